// Rotary position embedding, llama "normal" mode (adjacent pairs rotate), the
// mode llama.cpp uses for LLAMA_ROPE_TYPE_NORM models such as SmolLM2.
#pragma once

#include <cstdint>

#include "runtime/threadpool.h"

namespace glimpse {

// x:(T, H·D), pos:(T) -> y:(T, H·D). For each head and pair i < n_rot/2:
//   θ = pos · base^(-2i/n_rot);  (y₂ᵢ, y₂ᵢ₊₁) = (x₂ᵢ cosθ − x₂ᵢ₊₁ sinθ, x₂ᵢ sinθ + x₂ᵢ₊₁ cosθ)
// Dimensions ≥ n_rot pass through. y may alias x.
void rope_norm_ref(const float* x, const int32_t* pos, int64_t T, int64_t H, int64_t D, int64_t n_rot, float base,
                   float* y, ThreadPool* pool);

}  // namespace glimpse
