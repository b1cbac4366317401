// Layout of one compressed KV block (SPEC 2, 6, 8), shared by the reference and the kernels.
//
// One block holds n_b tokens x D channels of one kv head, for K or for V separately:
//   [ packed codes | s2[groups] (uint8) | z[groups] (int8) | stage-1 scale (FP32) ]
// Codes are in token-major order (t * D + d), 8 / b per byte, the first code in the low bits.
// Stage-2 groups: channel axis -> group = one channel over the block's n_b tokens (D groups);
// token axis -> group = group_size consecutive channels of one token (n_b * D / group_size).
// At 8 bits the block holds the INT8 codes themselves and no s2/z.
#pragma once

#include <cstdint>

#include "core/macros.h"
#include "core/quant.h"

namespace turbo {

struct BlockLayout {
  int n_b;         // tokens
  int d;           // channels
  int bits;        // 8, 4 or 2
  int axis;        // 0 = channel, 1 = token (Stage2Axis as int, usable on the device)
  int group_size;  // channels per group on the token axis

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
  // SPEC 8: codes + s2/z (1 byte each per group) + stage-1 scale (4 bytes).
  TURBO_HD int64_t bytes() const { return scale_offset() + 4; }
  TURBO_HD int64_t metadata_bytes() const { return 2 * groups() + 4; }
};

}  // namespace turbo
