// Registers every backend this build has: "ref" always, "cuda" when built with CUDA
// (TURBO_HAVE_CUDA comes with the turbo_cuda library). Idempotent.
#pragma once

namespace turbo {
namespace eval {

void register_builtin_backends();

}  // namespace eval
}  // namespace turbo
