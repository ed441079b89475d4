#pragma once
// Shapes and strides are counted in elements. Helpers shared by every op family.
#include <cstdint>
#include <string>
#include <vector>

namespace sparta {

using Shape = std::vector<int64_t>;

int64_t numel_of(const Shape& shape);
Shape contiguous_strides(const Shape& shape);
std::string shape_str(const Shape& shape);  // "(2, 3, 4)"
// Maps a possibly negative axis into [0, ndim); throws "[op] axis a out of range for ndim n".
int normalize_axis(int64_t axis, int ndim, const char* op);
// NumPy broadcasting of two shapes; throws naming both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

}  // namespace sparta
