#pragma once
// IDX files (the MNIST family's format), plain or gzip-compressed: a big-endian magic number
// 0x0000TTNN (TT the element type, NN the number of dimensions), NN big-endian 32-bit sizes,
// then the elements. Reading needs zlib (link ZLIB::ZLIB).
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <zlib.h>

#include "vgg/io/error.hpp"

namespace vgg::data {

/// An IDX file of unsigned bytes: its dimensions and its elements in row-major order.
struct idx_array {
    std::vector<std::uint32_t> dims;
    std::vector<std::uint8_t> values;
};

/// Reads an IDX file of unsigned bytes with `rank` dimensions. gzip is detected by content
/// (zlib reads plain files unchanged). A wrong magic number, a wrong rank, truncated data or
/// bytes after the end is an io::file_error that names the file.
inline idx_array read_idx(const std::filesystem::path& path, std::size_t rank)
{
    gzFile file = gzopen(path.c_str(), "rb");
    if (!file)
        throw io::file_error(path, "cannot open for reading");
    struct closer {
        gzFile f;
        ~closer() { gzclose(f); }
    } close_on_exit{file};

    auto read_exactly = [&](void* out, std::size_t size, const std::string& what) {
        auto* bytes = static_cast<std::uint8_t*>(out);
        std::size_t done = 0;
        while (done < size) {
            const unsigned chunk = static_cast<unsigned>(std::min<std::size_t>(size - done, 1u << 30));
            const int got = gzread(file, bytes + done, chunk);
            if (got < 0) {
                int code = 0;
                throw io::file_error(path, std::string("corrupt data (") + gzerror(file, &code) + ") while reading " + what);
            }
            if (got == 0)
                throw io::file_error(path, "truncated: ended after " + std::to_string(done) + " of the " +
                                               std::to_string(size) + " bytes of " + what);
            done += static_cast<std::size_t>(got);
        }
    };
    auto big_endian = [](const std::array<std::uint8_t, 4>& b) {
        return std::uint32_t(b[0]) << 24 | std::uint32_t(b[1]) << 16 | std::uint32_t(b[2]) << 8 | std::uint32_t(b[3]);
    };

    std::array<std::uint8_t, 4> word{};
    read_exactly(word.data(), 4, "the magic number");
    const std::uint32_t magic = big_endian(word);
    const std::uint32_t expected_magic = 0x0800u | static_cast<std::uint32_t>(rank);
    if (magic != expected_magic) {
        char text[64];
        std::snprintf(text, sizeof text, "wrong magic number 0x%08x, expected 0x%08x", magic, expected_magic);
        throw io::file_error(path, std::string(text) + " (unsigned bytes, " + std::to_string(rank) + " dimensions)");
    }
    idx_array array;
    std::uint64_t count = 1;
    for (std::size_t d = 0; d < rank; ++d) {
        read_exactly(word.data(), 4, "the dimensions");
        array.dims.push_back(big_endian(word));
        count *= array.dims.back();
        if (count > (std::uint64_t(1) << 34))
            throw io::file_error(path, "dimensions too large to be real");
    }
    array.values.resize(count);
    read_exactly(array.values.data(), count, "data (" + std::to_string(count) + " elements)");
    std::uint8_t extra;
    if (gzread(file, &extra, 1) != 0)
        throw io::file_error(path, "has bytes after the " + std::to_string(count) + " elements its dimensions announce");
    return array;
}

} // namespace vgg::data
