#pragma once
// Replacing a file so that readers, and a machine that loses power, see either the old file or the
// whole new one: write `<path>.tmp-<pid>`, fsync it, rename it over path (atomic on POSIX), then
// fsync the directory so the rename itself is durable. On any failure the temporary file is
// removed and path is untouched.
#include <functional>
#include <string>

namespace sparta::train {

std::string temp_path_for(const std::string& path);  // "<path>.tmp-<pid>"

// `write` must create the temporary file it is given, fill it and close it.
void replace_file_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& write);

void write_file_atomically(const std::string& path, const std::string& bytes);

}  // namespace sparta::train
