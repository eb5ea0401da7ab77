#pragma once
// Image files to pixels, for datasets of image files and for programs that classify them: JPEG
// through libjpeg-turbo; PNG, BMP, GIF, PGM/PPM and TGA through stb_image. The vgg::image
// component (link turbojpeg; stb is header-only). stb_image is compiled here with static
// linkage, so each translation unit that includes this has its copy.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#define STBI_FAILURE_USERMSG
// stb_image 2.27 (Debian 12's) reads and writes out of bounds on malformed JPEGs (its issues
// #1289 and #1291; our fuzzer found two such ways in): JPEG goes to libjpeg-turbo instead.
#define STBI_NO_JPEG
// Formats no image dataset needs are left out: fewer parsers of untrusted bytes.
#define STBI_NO_PSD
#define STBI_NO_HDR
#define STBI_NO_PIC
#include <stb/stb_image.h>
#include <turbojpeg.h>

#include "vgg/io/error.hpp"
#include "vgg/io/read_file.hpp"

namespace vgg::image {

/// Larger images are refused before decoding: a small corrupt header must not claim gigabytes.
inline constexpr int max_image_side = 16384;
inline constexpr long long max_image_pixels = 64ll << 20;
/// Larger image files are refused before they are read (a compressed image of max_image_pixels
/// is far smaller).
inline constexpr std::uintmax_t max_image_file_bytes = std::uintmax_t(256) << 20;

namespace detail {

/// The numbers of a binary PGM/PPM header that matter for stb_image 2.27 (Debian 12's), read as
/// stb reads them: whitespace and # comments between the width, height and maximum value.
struct pnm_header {
    bool number_too_long = false; ///< more than 9 digits: overflows stb's int parsing
    long long max_value = 0;      ///< above 255: 16-bit samples
};

/// The header of a binary PGM (P5) or PPM (P6), or nullopt for any other format.
inline std::optional<pnm_header> read_pnm_header(std::span<const std::uint8_t> bytes)
{
    if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '5' && bytes[1] != '6'))
        return std::nullopt;
    auto space = [](std::uint8_t c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
    };
    pnm_header header;
    std::size_t at = 2;
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
        long long value = 0;
        for (; at < bytes.size() && bytes[at] >= '0' && bytes[at] <= '9'; ++at)
            value = at - first_digit < 10 ? value * 10 + (bytes[at] - '0') : value;
        header.number_too_long = header.number_too_long || at - first_digit > 9;
        header.max_value = value; // the last of the three numbers is the maximum sample value
    }
    return header;
}

/// What in a binary PGM/PPM header stb_image 2.27 cannot decode safely, or "" (found by our
/// fuzzer; fixed in stb 2.28). 16-bit samples are safe only without stb's channel conversion,
/// which treats them as 8-bit and reads past its buffer: decode converts those itself.
inline std::string pnm_header_problem(std::span<const std::uint8_t> bytes)
{
    const auto header = read_pnm_header(bytes);
    return header && header->number_too_long ? "a header number of more than 9 digits" : "";
}

/// Grey to RGB (each value three times) or RGB to grey (stb_image's weights, as for every other
/// format it converts) for 8-bit pixels with their channels together.
inline std::vector<std::uint8_t> convert_channels(const std::uint8_t* values, std::size_t pixel_count, std::size_t from,
                                                  std::size_t to)
{
    std::vector<std::uint8_t> out(pixel_count * to);
    for (std::size_t i = 0; i < pixel_count; ++i) {
        const std::uint8_t* in = values + i * from;
        if (from == to)
            std::copy(in, in + from, &out[i * to]);
        else if (to == 3)
            std::fill_n(&out[i * 3], 3, in[0]);
        else
            out[i] = std::uint8_t((in[0] * 77 + in[1] * 150 + in[2] * 29) >> 8);
    }
    return out;
}

/// False for a PNG with a chunk longer than the bytes that follow it: stb_image 2.27 grows its
/// buffer to a chunk's declared length before reading it, so 80 bytes could make it allocate
/// 2 GB (found by our fuzzer). The chunks are walked as stb walks them: length, type, data, CRC.
inline bool png_chunks_fit(std::span<const std::uint8_t> bytes)
{
    static constexpr std::uint8_t signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (bytes.size() < 8 || !std::equal(signature, signature + 8, bytes.begin()))
        return true; // not a PNG
    for (std::size_t at = 8; at + 8 <= bytes.size();) {
        const std::size_t length = std::size_t(bytes[at]) << 24 | std::size_t(bytes[at + 1]) << 16 |
                                   std::size_t(bytes[at + 2]) << 8 | bytes[at + 3];
        if (length > bytes.size() - at - 8)
            return false;
        if (std::equal(bytes.begin() + long(at) + 4, bytes.begin() + long(at) + 8, "IEND"))
            break;
        at += 12 + length;
    }
    return true;
}

inline void check_image_size(int width, int height, const std::filesystem::path& source)
{
    if (width <= 0 || height <= 0)
        throw io::file_error(source,
                             "image is " + std::to_string(width) + "x" + std::to_string(height) + ": it has no pixels");
    if (width > max_image_side || height > max_image_side || (long long)width * height > max_image_pixels)
        throw io::file_error(source, "image is " + std::to_string(width) + "x" + std::to_string(height) +
                                         ", larger than the " + std::to_string(max_image_side) + " pixels a side (" +
                                         std::to_string(max_image_pixels >> 20) + " M pixels) vgg accepts");
}

/// CMYK pixels as libjpeg-turbo decodes them from a CMYK or YCCK JPEG, stored inverted as
/// Photoshop writes them (255 - ink), to grey or RGB as PIL's convert does: each colour is its
/// ink's complement times black's, (255 - C)(255 - K) / 255.
inline std::vector<std::uint8_t> inverted_cmyk_to(const std::uint8_t* cmyk, std::size_t pixel_count,
                                                  std::size_t channels)
{
    std::vector<std::uint8_t> rgb(pixel_count * 3);
    for (std::size_t i = 0; i < pixel_count; ++i)
        for (std::size_t c = 0; c < 3; ++c)
            rgb[i * 3 + c] = std::uint8_t((cmyk[i * 4 + c] * cmyk[i * 4 + 3] + 127) / 255);
    return channels == 3 ? rgb : convert_channels(rgb.data(), pixel_count, 3, 1);
}

/// A JPEG decoded by libjpeg-turbo to grey (1 channel) or RGB (3), CMYK ones too; a damaged file
/// (even one libjpeg could half-read with a warning) is an error.
inline std::vector<std::uint8_t> decode_jpeg(std::span<const std::uint8_t> bytes, const std::filesystem::path& source,
                                             std::size_t channels, int& width, int& height)
{
    const std::unique_ptr<void, int (*)(tjhandle)> decoder(tjInitDecompress(), tjDestroy);
    if (!decoder)
        throw io::file_error(source, "cannot start libjpeg-turbo");
    auto fail = [&] {
        return io::file_error(source, std::string("cannot read as a JPEG image: ") + tjGetErrorStr2(decoder.get()));
    };
    int subsampling = 0, colourspace = 0;
    if (tjDecompressHeader3(decoder.get(), bytes.data(), static_cast<unsigned long>(bytes.size()), &width, &height,
                            &subsampling, &colourspace) != 0)
        throw fail();
    check_image_size(width, height, source);
    // libjpeg-turbo converts CMYK to nothing else: it is decoded as it is and converted here.
    const bool cmyk = colourspace == TJCS_CMYK || colourspace == TJCS_YCCK;
    const std::size_t pixel_count = std::size_t(width) * std::size_t(height);
    std::vector<std::uint8_t> pixels(pixel_count * (cmyk ? 4 : channels));
    if (tjDecompress2(decoder.get(), bytes.data(), static_cast<unsigned long>(bytes.size()), pixels.data(), width, 0,
                      height,
                      cmyk            ? TJPF_CMYK
                      : channels == 1 ? TJPF_GRAY
                                      : TJPF_RGB,
                      TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS) != 0)
        throw fail();
    return cmyk ? inverted_cmyk_to(pixels.data(), pixel_count, channels) : pixels;
}

} // namespace detail

/// Decoded pixels, row by row, each pixel's channels together (grey, or red, green, blue).
struct pixels {
    std::size_t width = 0, height = 0, channels = 0;
    std::vector<std::uint8_t> values;
};

/// Decodes `bytes` to 8-bit grey (channels 1) or RGB (channels 3), converting as PIL's
/// convert("L") / convert("RGB") would; errors name `source`.
inline pixels decode(std::span<const std::uint8_t> bytes, const std::filesystem::path& source, std::size_t channels)
{
    if (channels != 1 && channels != 3)
        throw std::invalid_argument("vgg::image::decode: channels must be 1 (grey) or 3 (RGB), not " +
                                    std::to_string(channels));
    if (bytes.size() > std::size_t(INT32_MAX))
        throw io::file_error(source, "too large to be an image");
    int width = 0, height = 0, found_channels = 0;
    pixels out;
    out.channels = channels;
    if (bytes.size() >= 2 && bytes[0] == 0xff && bytes[1] == 0xd8) { // the JPEG start-of-image marker
        out.values = detail::decode_jpeg(bytes, source, channels, width, height);
    } else {
        const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
        const int length = static_cast<int>(bytes.size());
        if (const auto problem = detail::pnm_header_problem(bytes); !problem.empty())
            throw io::file_error(source, "cannot read as an image: PGM/PPM with " + problem);
        if (!detail::png_chunks_fit(bytes))
            throw io::file_error(source,
                                 "cannot read as an image: truncated or corrupt PNG (a chunk longer than the file)");
        if (!stbi_info_from_memory(data, length, &width, &height, &found_channels))
            throw io::file_error(source, std::string("cannot read as an image: ") + stbi_failure_reason());
        detail::check_image_size(width, height, source);
        const auto pnm = detail::read_pnm_header(bytes);
        const bool convert_here = pnm && pnm->max_value > 255; // see pnm_header_problem
        const std::unique_ptr<stbi_uc, void (*)(void*)> decoded(
            stbi_load_from_memory(data, length, &width, &height, &found_channels, convert_here ? 0 : int(channels)),
            stbi_image_free);
        if (!decoded)
            throw io::file_error(source, std::string("cannot read as an image: ") + stbi_failure_reason());
        const std::size_t pixel_count = std::size_t(width) * std::size_t(height);
        if (convert_here)
            out.values = detail::convert_channels(decoded.get(), pixel_count, std::size_t(found_channels), channels);
        else
            out.values.assign(decoded.get(), decoded.get() + pixel_count * channels);
    }
    out.width = std::size_t(width);
    out.height = std::size_t(height);
    return out;
}

/// Reads an image file and decodes it as above.
inline pixels read(const std::filesystem::path& path, std::size_t channels)
{
    return decode(io::read_file_bytes(path, max_image_file_bytes), path, channels);
}

} // namespace vgg::image
