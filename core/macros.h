// Host/device portability macros. Every numeric recipe in core/ is a TURBO_HD function so that
// reference/ (g++) and cuda/ (nvcc) call the same code (STYLE "The one idea").
#pragma once

#if defined(__CUDACC__)
#define TURBO_HD __host__ __device__ __forceinline__
#else
#define TURBO_HD inline
#endif

#if defined(__CUDA_ARCH__)
#define TURBO_ON_DEVICE 1
#else
#define TURBO_ON_DEVICE 0
#endif
