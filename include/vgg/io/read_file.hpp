#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "vgg/io/error.hpp"

namespace vgg::io {

/// The largest file read_file_bytes reads unless told otherwise: above the largest weights and
/// checkpoints of the VGG family (VGG-19 with its momentum: 1.1 GB), far below what a device
/// such as /dev/zero would make it allocate.
inline constexpr std::uintmax_t max_file_bytes = std::uintmax_t(4) << 30;

/// The whole content of a regular file of at most `max_bytes`; anything else (a folder, a device,
/// a pipe, a larger file) or a file that cannot be read is a file_error naming it.
inline std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path,
                                                 std::uintmax_t max_bytes = max_file_bytes)
{
    std::error_code error;
    const auto status = std::filesystem::status(path, error);
    if (error || !std::filesystem::exists(status))
        throw file_error(path, "cannot open for reading: no such file");
    if (!std::filesystem::is_regular_file(status))
        throw file_error(path, "is not a regular file (a folder, device or pipe): vgg reads only regular files");
    const std::uintmax_t size = std::filesystem::file_size(path, error);
    if (error)
        throw file_error(path, "cannot open for reading: " + error.message());
    if (size > max_bytes)
        throw file_error(path, "is " + std::to_string(size) + " bytes, more than the " + std::to_string(max_bytes) +
                                   " this reader accepts");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw file_error(path, "cannot open for reading");
    std::vector<std::uint8_t> bytes(static_cast<std::size_t>(size));
    in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
    if (in.bad() || static_cast<std::uintmax_t>(in.gcount()) != size)
        throw file_error(path, "read error (the file changed size while it was read?)");
    return bytes;
}

} // namespace vgg::io
