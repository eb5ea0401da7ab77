#pragma once
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include <unistd.h>

#include "vgg/io/error.hpp"

namespace vgg::io {

/// The temporary file this process writes `path` through: "PATH.tmpPID" (output_folder.hpp reads
/// the process id back to remove those of processes that died).
inline std::filesystem::path temporary_path_for(const std::filesystem::path& path)
{
    auto temporary = path;
    temporary += ".tmp";
    temporary += std::to_string(::getpid());
    return temporary;
}

/// Writes `content` to `path` so that a crash at any moment leaves either the old file or the
/// complete new one: write a temporary file beside it, flush it to disk, then rename it over.
inline void write_file_atomically(const std::filesystem::path& path, std::string_view content)
{
    const auto temporary = temporary_path_for(path);
    std::FILE* file = std::fopen(temporary.c_str(), "wb");
    if (!file)
        throw file_error(path, std::string("cannot create temporary file: ") + std::strerror(errno));
    const bool written = std::fwrite(content.data(), 1, content.size(), file) == content.size() &&
                         std::fflush(file) == 0 && ::fsync(::fileno(file)) == 0;
    const int write_errno = errno;
    if (std::fclose(file) != 0 || !written) {
        std::filesystem::remove(temporary);
        throw file_error(path, std::string("cannot write: ") + std::strerror(write_errno));
    }
    std::error_code error;
    std::filesystem::rename(temporary, path, error);
    if (error) {
        std::filesystem::remove(temporary);
        throw file_error(path, "cannot replace: " + error.message());
    }
}

} // namespace vgg::io
