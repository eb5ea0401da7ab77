#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

#include "vgg/io/error.hpp"

namespace vgg::io {

/// The whole content of a file; a file that cannot be opened or read is a file_error naming it.
inline std::vector<std::uint8_t> read_file_bytes(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw file_error(path, "cannot open for reading");
    std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.bad())
        throw file_error(path, "read error");
    return bytes;
}

} // namespace vgg::io
