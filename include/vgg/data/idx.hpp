#pragma once
// IDX files (the MNIST family's format), plain or gzip-compressed: a big-endian magic number
// 0x0000TTNN (TT the element type, NN the number of dimensions), NN big-endian 32-bit sizes,
// then the elements. Reading needs zlib (link ZLIB::ZLIB).
#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include <zlib.h>

#include "vgg/io/error.hpp"
#include "vgg/io/read_file.hpp"

namespace vgg::data {

/// An IDX file of unsigned bytes: its dimensions and its elements in row-major order.
struct idx_array {
    std::vector<std::uint32_t> dims;
    std::vector<std::uint8_t> values;
};

namespace detail {

/// No real IDX file of bytes holds more elements than this; larger sizes mean a corrupt file.
inline constexpr std::uint64_t max_idx_elements = std::uint64_t(1) << 34;

inline bool is_gzip(std::span<const std::uint8_t> bytes)
{
    return bytes.size() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b;
}

/// Inflates gzip data (several concatenated members too, as gzip itself writes them), refusing
/// to grow past `limit` bytes so that a small corrupt file cannot exhaust memory.
inline std::vector<std::uint8_t> gunzip(std::span<const std::uint8_t> compressed, const std::filesystem::path& source,
                                        std::uint64_t limit)
{
    z_stream stream{};
    if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK)
        throw io::file_error(source, "cannot start zlib");
    struct ender {
        z_stream& s;
        ~ender() { inflateEnd(&s); }
    } end_on_exit{stream};

    std::vector<std::uint8_t> out;
    auto consumed = [&] { return static_cast<std::size_t>(stream.next_in - compressed.data()); };
    stream.next_in = const_cast<Bytef*>(compressed.data());
    while (consumed() < compressed.size()) { // one gzip member per pass
        int status = Z_OK;
        while (status != Z_STREAM_END) {
            if (out.size() >= limit)
                throw io::file_error(source, "decompresses to more than " + std::to_string(limit) + " bytes");
            const std::size_t filled = out.size();
            out.resize(std::min<std::uint64_t>(limit, std::max<std::size_t>(2 * filled, 1u << 16)));
            stream.next_out = out.data() + filled;
            const auto space = static_cast<uInt>(std::min<std::size_t>(out.size() - filled, 1u << 30));
            stream.avail_out = space;
            stream.avail_in = static_cast<uInt>(std::min<std::size_t>(compressed.size() - consumed(), 1u << 30));
            status = inflate(&stream, Z_NO_FLUSH);
            out.resize(filled + (space - stream.avail_out));
            // Output space left over with all input consumed: the stream stopped before its end.
            const bool starved = stream.avail_out != 0 && consumed() == compressed.size();
            if (status == Z_BUF_ERROR || (status == Z_OK && starved))
                throw io::file_error(source, "truncated gzip data");
            if (status != Z_OK && status != Z_STREAM_END)
                throw io::file_error(source, std::string("corrupt gzip data (") +
                                                 (stream.msg ? stream.msg : "zlib error") + ")");
        }
        if (consumed() < compressed.size() && !is_gzip(compressed.subspan(consumed())))
            throw io::file_error(source, "has bytes after its gzip data that are not another gzip member");
        inflateReset(&stream);
    }
    return out;
}

} // namespace detail

/// Decodes an IDX array of unsigned bytes with `rank` dimensions from `bytes`, gzip-compressed or
/// not (detected by content). A wrong magic number, a wrong rank, corrupt or truncated data or
/// bytes after the end is an io::file_error that names `source`.
inline idx_array decode_idx(std::span<const std::uint8_t> bytes, std::size_t rank, const std::filesystem::path& source)
{
    std::vector<std::uint8_t> inflated;
    if (detail::is_gzip(bytes)) {
        inflated = detail::gunzip(bytes, source, 4 * (rank + 1) + detail::max_idx_elements);
        bytes = inflated;
    }
    std::size_t at = 0;
    auto take = [&](std::size_t size, const std::string& what) {
        if (bytes.size() - at < size)
            throw io::file_error(source, "truncated: ended after " + std::to_string(bytes.size() - at) + " of the " +
                                             std::to_string(size) + " bytes of " + what);
        at += size;
        return bytes.data() + at - size;
    };
    auto big_endian = [](const std::uint8_t* b) {
        return std::uint32_t(b[0]) << 24 | std::uint32_t(b[1]) << 16 | std::uint32_t(b[2]) << 8 | std::uint32_t(b[3]);
    };

    const std::uint32_t magic = big_endian(take(4, "the magic number"));
    const std::uint32_t expected_magic = 0x0800u | static_cast<std::uint32_t>(rank);
    if (magic != expected_magic) {
        char text[64];
        std::snprintf(text, sizeof text, "wrong magic number 0x%08x, expected 0x%08x", magic, expected_magic);
        throw io::file_error(source, std::string(text) + " (unsigned bytes, " + std::to_string(rank) + " dimensions)");
    }
    idx_array array;
    std::uint64_t count = 1;
    for (std::size_t d = 0; d < rank; ++d) {
        array.dims.push_back(big_endian(take(4, "the dimensions")));
        count *= array.dims.back();
        if (count > detail::max_idx_elements)
            throw io::file_error(source, "dimensions too large to be real");
    }
    const std::uint8_t* values = take(count, "data (" + std::to_string(count) + " elements)");
    if (at != bytes.size())
        throw io::file_error(source,
                             "has bytes after the " + std::to_string(count) + " elements its dimensions announce");
    array.values.assign(values, values + count);
    return array;
}

/// Reads an IDX file of unsigned bytes with `rank` dimensions (see decode_idx).
inline idx_array read_idx(const std::filesystem::path& path, std::size_t rank)
{
    return decode_idx(io::read_file_bytes(path), rank, path);
}

} // namespace vgg::data
