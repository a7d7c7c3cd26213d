// Attention over a q8_0 / q4_0 KV cache (contract: ops/attention_kvq.h) on 16 f32 lanes:
// the width-generic algorithm of ops/simd/attention_kvq.h instantiated with VecAvx512.
#include "ops/simd/vec_avx512.h"
#include "ops/attention_kvq.h"
#include "ops/simd/attention_kvq.h"

namespace glimpse {

void attention_kvq_avx512(const AttentionArgs& a, float* scratch, ThreadPool* pool) {
    simd::AttentionKvq<simd::VecAvx512>::run(a, scratch, pool);
}

}  // namespace glimpse
