#pragma once
// vgg_predict's image path: any image stb_image decodes, made 8-bit grey and brought to 28x28
// as Fashion-MNIST images are. Shared by vgg_predict and the image fuzz target. stb_image is
// compiled here with static linkage: include this header in one translation unit per program.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <span>
#include <string>
#include <vector>

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>

#include <vgg/data/resize.hpp>
#include <vgg/io/error.hpp>

namespace vgg_predict {

/// Larger images are refused before decoding: a small corrupt header must not claim gigabytes.
inline constexpr int max_image_side = 16384;
inline constexpr long long max_image_pixels = 64ll << 20;

namespace detail {

/// False for a JPEG with a Huffman table (DHT segment) of more than 256 codes, which makes
/// stb_image 2.27, the version Debian 12 ships, write past its tables (stb issue #1289, fixed in
/// 2.28; our fuzzer found it too). Every FF C4 marker is checked, read the way stb reads a DHT
/// segment, wherever it sits: a rare valid file may be refused, a bad one never reaches stb.
inline bool jpeg_huffman_tables_fit(std::span<const std::uint8_t> bytes)
{
    auto byte = [&](std::size_t i) -> std::size_t { return i < bytes.size() ? bytes[i] : 0; }; // stb reads 0 past the end
    std::size_t start = 0;
    while (byte(start) == 0xff) // stb skips fill bytes before any marker, SOI included
        ++start;
    if (start == 0 || byte(start) != 0xd8)
        return true; // not a JPEG
    for (std::size_t at = start; at + 1 < bytes.size(); ++at) {
        if (bytes[at] != 0xff || bytes[at + 1] != 0xc4)
            continue;
        long remaining = long(byte(at + 2) << 8 | byte(at + 3)) - 2;
        for (std::size_t table = at + 4; remaining > 0 && table < bytes.size();) {
            std::size_t codes = 0;
            for (std::size_t i = 1; i <= 16; ++i)
                codes += byte(table + i);
            if (codes > 256)
                return false;
            remaining -= long(17 + codes);
            table += 17 + codes;
        }
    }
    return true;
}

/// What in a binary PGM/PPM header stb_image 2.27 (Debian 12's) decodes unsafely, or "": a
/// number of more than 9 digits overflows its int parsing, and a 16-bit PPM converted to grey
/// is read past its buffer (both fixed in stb 2.28; both found by our fuzzer). The header is read
/// as stb reads it: whitespace and # comments between the width, height and maximum value.
inline std::string pnm_header_problem(std::span<const std::uint8_t> bytes)
{
    if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '5' && bytes[1] != '6'))
        return ""; // not a format stb reads as PNM
    auto space = [](std::uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; };
    std::size_t at = 2;
    long long value = 0; // of the last number read: after the loop, the maximum sample value
    for (int number = 0; number < 3; ++number) {
        for (;;) {
            while (at < bytes.size() && space(bytes[at]))
                ++at;
            if (at >= bytes.size() || bytes[at] != '#')
                break;
            while (at < bytes.size() && bytes[at] != '\n' && bytes[at] != '\r')
                ++at;
        }
        const std::size_t first_digit = at;
        for (value = 0; at < bytes.size() && bytes[at] >= '0' && bytes[at] <= '9'; ++at)
            value = at - first_digit < 10 ? value * 10 + (bytes[at] - '0') : value;
        if (at - first_digit > 9)
            return "a header number of more than 9 digits";
    }
    if (bytes[1] == '6' && value > 255)
        return "16-bit colour samples, which this build's stb_image cannot convert to grey";
    return "";
}

} // namespace detail

/// Decodes `bytes` (PNG, JPEG, BMP, GIF, PGM, ...) to 28x28 grey pixels; errors name `source`.
inline std::vector<std::uint8_t> decode_grey_28x28(std::span<const std::uint8_t> bytes, const std::filesystem::path& source)
{
    if (bytes.size() > std::size_t(INT32_MAX))
        throw vgg::io::file_error(source, "too large to be an image");
    const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
    const int length = static_cast<int>(bytes.size());
    if (!detail::jpeg_huffman_tables_fit(bytes))
        throw vgg::io::file_error(source, "cannot read as an image: corrupt JPEG (a Huffman table that does not fit)");
    if (const auto problem = detail::pnm_header_problem(bytes); !problem.empty())
        throw vgg::io::file_error(source, "cannot read as an image: PGM/PPM with " + problem);
    int width = 0, height = 0, channels = 0;
    if (!stbi_info_from_memory(data, length, &width, &height, &channels))
        throw vgg::io::file_error(source, std::string("cannot read as an image: ") + stbi_failure_reason());
    if (width <= 0 || height <= 0)
        throw vgg::io::file_error(source, "image is " + std::to_string(width) + "x" + std::to_string(height) + ": it has no pixels");
    if (width > max_image_side || height > max_image_side || (long long)width * height > max_image_pixels)
        throw vgg::io::file_error(source, "image is " + std::to_string(width) + "x" + std::to_string(height) +
                                              ", larger than the " + std::to_string(max_image_side) + " pixels a side (" +
                                              std::to_string(max_image_pixels >> 20) + " M pixels) vgg_predict accepts");
    std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load_from_memory(data, length, &width, &height, &channels, 1),
                                                     stbi_image_free);
    if (!pixels)
        throw vgg::io::file_error(source, std::string("cannot read as an image: ") + stbi_failure_reason());
    std::vector<std::uint8_t> out(28 * 28), scratch;
    vgg::data::bilinear_resizer(std::size_t(height), std::size_t(width), 28, 28).resize(pixels.get(), out.data(), scratch);
    return out;
}

/// Reads an image file and decodes it as above.
inline std::vector<std::uint8_t> read_grey_28x28(const std::filesystem::path& path)
{
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw vgg::io::file_error(path, "cannot open for reading");
    const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return decode_grey_28x28(bytes, path);
}

} // namespace vgg_predict
