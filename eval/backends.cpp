#include "eval/backends.h"

#include "reference/reference.h"
#ifdef TURBO_HAVE_CUDA
#include "cuda/cuda_backend.h"
#endif

namespace turbo {
namespace eval {

void register_builtin_backends() {
  ref::register_reference_backend();
#ifdef TURBO_HAVE_CUDA
  cuda::register_cuda_backend();
#endif
}

}  // namespace eval
}  // namespace turbo
