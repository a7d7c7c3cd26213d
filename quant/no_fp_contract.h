// Included after the other includes by the quant/ files whose results must equal
// ggml's to the bit: from there to the end of the including file every product is
// rounded before it is added (no a*b+c fused into an FMA, whatever -ffp-contract the
// build uses). File-scope pragmas: they hold for the rest of the translation unit.
#pragma once

#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
