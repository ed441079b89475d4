#pragma once
// CUDA tests run only where a GPU is visible; elsewhere Boost.Test reports them as skipped.
#include <boost/test/unit_test.hpp>

#include "core/cuda/runtime.h"

namespace sparta::test {

struct gpu_present {
  boost::test_tools::assertion_result operator()(boost::unit_test::test_unit_id) const {
    boost::test_tools::assertion_result r(cuda::available());
    r.message() << "no CUDA device visible";
    return r;
  }
};

}  // namespace sparta::test

// Marks a suite or case as needing a GPU.
#define SPARTA_NEEDS_GPU *boost::unit_test::precondition(::sparta::test::gpu_present())
