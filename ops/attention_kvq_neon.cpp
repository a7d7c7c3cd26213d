// Attention over a q8_0 / q4_0 KV cache (contract: ops/attention_kvq.h) on 4 f32 lanes:
// the width-generic algorithm of ops/simd/attention_kvq.h instantiated with VecNeon.
#include "ops/simd/vec_neon.h"
#include "ops/attention_kvq.h"
#include "ops/simd/attention_kvq.h"

namespace glimpse {

void attention_kvq_neon(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
    simd::AttentionKvq<simd::VecNeon>::run(a, scratch, pool);
}

}  // namespace glimpse
