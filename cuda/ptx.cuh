// PTX wrappers shared by the prefill (flashq_mma.cu) and decode (flashq_decode.cu) kernels: INT8
// tensor-core products (mma.sync m16n8k32, sm_80+; integer accumulation, exact in any order) and
// asynchronous 16-byte copies global -> shared (cp.async, sm_80+), ldmatrix.
// Fragments (PTX ISA, 8-bit m16n8k32), g = lane / 4, q = lane % 4:
//   A (16 x 32, row): a0 = A[g][4q..4q+3], a1 = A[g+8][4q..], a2 = A[g][16+4q..], a3 =
//   A[g+8][16+4q..] B (32 x 8, col):  b0 = B[4q..4q+3][g], b1 = B[16+4q..][g] C (16 x 8):       c0,
//   c1 = C[g][2q, 2q+1], c2, c3 = C[g+8][2q, 2q+1]
#pragma once

#include <cstdint>

namespace turbo {
namespace cuda {

// c += A . B on mma.sync m16n8k32 with A of type ATYPE (s8 or u8: the P codes) and B s8.
#define TURBO_DEFINE_MMA_M16N8K32(NAME, ATYPE)                                         \
  __device__ __forceinline__ void NAME(int(&c)[4], const uint32_t(&a)[4], uint32_t b0, \
                                       uint32_t b1) {                                  \
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32." ATYPE                        \
                 ".s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"     \
                 : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])                      \
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));      \
  }
TURBO_DEFINE_MMA_M16N8K32(mma_s8s8, "s8")
TURBO_DEFINE_MMA_M16N8K32(mma_u8s8, "u8")  // A unsigned (P codes), B signed (V codes)
#undef TURBO_DEFINE_MMA_M16N8K32

// Four 8 x 8 matrices of 16-bit elements (= 8 rows x 16 bytes each) from shared memory: lane l
// gives the address of row l % 8 of matrix l / 8; r[i] receives matrix i's fragment, row
// lane / 4, bytes 4 (lane % 4) .. +3. So with int8 data: an A fragment of m16n8k32 from a
// row-major 16 x 32 tile, or the two B registers of two k-steps from a [n][k] tile.
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* smem_row) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem_row));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(s));
}

// 16-byte async copy; src_bytes < 16 zero-fills the rest.
__device__ __forceinline__ void cp_async16(void* smem, const void* gmem, int src_bytes = 16) {
  const uint32_t s = static_cast<uint32_t>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
// Waits until at most N of this thread's committed groups are still in flight.
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace cuda
}  // namespace turbo
