// Layout of one compressed KV block (SPEC 2, 6, 8), shared by the reference and the kernels.
//
// One block holds n_b tokens x D channels of one kv head, for K or for V separately:
//   [ packed codes | s2[groups] (uint8) | z[groups] (int8) | stage-1 scale(s) (FP32) ]
// Codes are in token-major order (t * D + d), 8 / b per byte, the first code in the low bits.
// Stage-2 groups: channel axis -> group = one channel over the block's n_b tokens (D groups);
// token axis -> group = group_size consecutive channels of one token (n_b * D / group_size).
// At 8 bits the block holds the INT8 codes themselves and no s2/z. The stage-1 scale is one FP32
// per block, or one per token with kv_scale = token (token_scales). With s2_step = float
// (frac_step) the s2 byte holds the group's range hi - lo instead of the integer step.
#pragma once

#include <cstdint>

#include "core/macros.h"
#include "core/quant.h"

namespace turbo {

struct BlockLayout {
  int n_b;               // tokens
  int d;                 // channels
  int bits;              // 8, 4 or 2
  int axis;              // 0 = channel, 1 = token (Stage2Axis as int, usable on the device)
  int group_size;        // channels per group on the token axis
  int frac_step = 0;     // 1: stage 2 with the fractional step (core/quant.h stage2f_*)
  int token_scales = 0;  // 1: one FP32 stage-1 scale per token instead of one per block

  // The channel-axis layout with the integer step and one stage-1 scale per block: the layout the
  // kernels' fast paths (the decode kernel, the register path and column scan of stage 2) take.
  // group_size is not read on the channel axis.
  TURBO_HD static BlockLayout channel_axis(int n_b, int d, int bits) {
    BlockLayout L;
    L.n_b = n_b;
    L.d = d;
    L.bits = bits;
    L.axis = 0;
    L.group_size = d;
    return L;
  }

  TURBO_HD int64_t elements() const { return static_cast<int64_t>(n_b) * d; }
  TURBO_HD int64_t groups() const {
    if (bits == 8) return 0;
    return axis == 0 ? d : static_cast<int64_t>(n_b) * (d / group_size);
  }
  // Index of the stage-2 group of element (t, c).
  TURBO_HD int64_t group_of(int t, int c) const {
    return axis == 0 ? c : static_cast<int64_t>(t) * (d / group_size) + c / group_size;
  }
  TURBO_HD int64_t code_bytes() const {
    return bits == 8 ? elements() : packed_bytes(elements(), bits);
  }
  TURBO_HD int64_t s2_offset() const { return code_bytes(); }
  TURBO_HD int64_t z_offset() const { return code_bytes() + groups(); }
  TURBO_HD int64_t scale_offset() const { return code_bytes() + 2 * groups(); }
  TURBO_HD int64_t scale_bytes() const { return token_scales ? 4 * static_cast<int64_t>(n_b) : 4; }
  // SPEC 8: codes + s2/z (1 byte each per group) + stage-1 scale(s) (4 bytes each).
  TURBO_HD int64_t bytes() const { return scale_offset() + scale_bytes(); }
  TURBO_HD int64_t metadata_bytes() const { return 2 * groups() + scale_bytes(); }
  // Stage 2 of one group, integer or fractional step.
  TURBO_HD Stage2Params params(int lo, int hi) const {
    return frac_step ? stage2f_params(lo, hi) : stage2_params(lo, hi, bits);
  }
  TURBO_HD uint8_t code(int q, Stage2Params p) const {
    return frac_step ? stage2f_code(q, p, bits) : stage2_code(q, p, bits);
  }
  TURBO_HD int8_t dequant(int c, Stage2Params p) const {
    return frac_step ? stage2f_dequant(c, p, bits) : stage2_dequant(c, p);
  }
};

}  // namespace turbo
