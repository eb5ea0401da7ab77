#include <doctest/doctest.h>

#include "test_support.hpp"

#include <cstdio>
#include <functional>
#include <unistd.h>
#include <filesystem>
#include <fstream>
#include <string>

#include <zlib.h>

#include <vgg/data/fashion_mnist.hpp>
#include <vgg/image/bilinear_resizer.hpp>

using namespace vgg;
using vgg::testing::error_of;
using vgg::testing::scratch_file;
using vgg::testing::write_bytes;
namespace fs = std::filesystem;

namespace {

const fs::path fixtures = VGG_TEST_DATA_DIR;

std::string idx_header(std::uint32_t magic, std::initializer_list<std::uint32_t> dims)
{
    std::string bytes;
    auto put = [&](std::uint32_t v) {
        for (int shift = 24; shift >= 0; shift -= 8)
            bytes.push_back(static_cast<char>((v >> shift) & 0xff));
    };
    put(magic);
    for (auto d : dims)
        put(d);
    return bytes;
}

} // namespace

TEST_CASE("bilinear resize equals torchvision's Resize + ToTensor byte for byte")
{
    const auto source = data::read_idx(fixtures / "resize_source.idx3.gz", 3);
    for (std::size_t size : {224, 64, 32}) {
        CAPTURE(size);
        const auto golden = data::read_idx(fixtures / ("resize_" + std::to_string(size) + ".idx3.gz"), 3);
        REQUIRE(golden.dims[0] == source.dims[0]);
        const image::bilinear_resizer resizer(28, 28, size, size);
        std::vector<std::uint8_t> scratch, resized;
        std::vector<float> unit(size * size);
        std::size_t mismatches = 0;
        for (std::size_t n = 0; n < source.dims[0]; ++n) {
            resizer.resize_to_unit(source.values.data() + n * 784, unit.data(), scratch, resized);
            for (std::size_t i = 0; i < size * size; ++i)
                mismatches += unit[i] != static_cast<float>(golden.values[n * size * size + i]) / 255.f;
        }
        CHECK(mismatches == 0);
    }
}

TEST_CASE("a resizer refuses an image side of 0 pixels (the fuzzer found a PGM with no rows)")
{
    CHECK_THROWS_AS(image::bilinear_resizer(0, 7, 28, 28), std::invalid_argument);
    CHECK_THROWS_AS(image::bilinear_resizer(28, 28, 28, 0), std::invalid_argument);
}

TEST_CASE("IDX files are read plain and gzip-compressed")
{
    const std::string bytes =
        idx_header(0x0803, {2, 2, 3}) + std::string("\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c", 12);
    const auto plain = scratch_file("plain-idx3");
    write_bytes(plain, bytes);
    const auto compressed = scratch_file("compressed-idx3.gz");
    gzFile gz = gzopen(compressed.c_str(), "wb");
    gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size()));
    gzclose(gz);
    for (const auto& path : {plain, compressed}) {
        const auto array = data::read_idx(path, 3);
        CHECK(array.dims == std::vector<std::uint32_t>{2, 2, 3});
        CHECK(array.values.size() == 12);
        CHECK(array.values[11] == 12);
    }
}

TEST_CASE("bad IDX files give an error that names the file and the problem")
{
    const auto path = scratch_file("bad-idx");
    CHECK(error_of([&] { data::read_idx(scratch_file("does-not-exist"), 1); }).find("does-not-exist: cannot open") !=
          std::string::npos);

    write_bytes(path, idx_header(0x0801, {3}) + "\x01\x02\x03");
    CHECK(error_of([&] {
              data::read_idx(path, 3);
          }).find(path.string() + ": wrong magic number 0x00000801, expected 0x00000803") == 0);

    write_bytes(path, idx_header(0x0801, {5}) + "\x01\x02");
    CHECK(error_of([&] { data::read_idx(path, 1); }) ==
          path.string() + ": truncated: ended after 2 of the 5 bytes of data (5 elements)");

    write_bytes(path, idx_header(0x0801, {2}) + "\x01\x02\x03");
    CHECK(error_of([&] { data::read_idx(path, 1); }) ==
          path.string() + ": has bytes after the 2 elements its dimensions announce");

    write_bytes(path, std::string("\0\0", 2));
    CHECK(error_of([&] {
              data::read_idx(path, 1);
          }).find("truncated: ended after 2 of the 4 bytes of the magic number") != std::string::npos);
}

namespace {
std::string gzip_bytes(const std::string& bytes)
{
    uLongf size = compressBound(static_cast<uLong>(bytes.size())) + 32;
    std::string out(size, '\0');
    z_stream stream{};
    deflateInit2(&stream, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
    stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
    stream.avail_in = static_cast<uInt>(bytes.size());
    stream.next_out = reinterpret_cast<Bytef*>(out.data());
    stream.avail_out = static_cast<uInt>(size);
    deflate(&stream, Z_FINISH);
    out.resize(stream.total_out);
    deflateEnd(&stream);
    return out;
}
} // namespace

TEST_CASE("gzip IDX data: concatenated members are one file, and corrupt, truncated or trailed data is an error")
{
    const std::string bytes = idx_header(0x0801, {6}) + std::string("\x01\x02\x03\x04\x05\x06", 6);
    const auto path = scratch_file("gz-idx1.gz");
    write_bytes(path, gzip_bytes(bytes.substr(0, 7)) + gzip_bytes(bytes.substr(7)));
    CHECK(data::read_idx(path, 1).values == std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6});

    const std::string whole = gzip_bytes(bytes);
    write_bytes(path, whole.substr(0, whole.size() - 12));
    CHECK(error_of([&] { data::read_idx(path, 1); }) == path.string() + ": truncated gzip data");
    std::string corrupt = whole;
    corrupt[12] = static_cast<char>(corrupt[12] ^ 0x55);
    corrupt[13] = static_cast<char>(corrupt[13] ^ 0x55);
    write_bytes(path, corrupt);
    CHECK(error_of([&] { data::read_idx(path, 1); }).find(path.string() + ": corrupt gzip data (") == 0);
    write_bytes(path, whole + "junk");
    CHECK(error_of([&] { data::read_idx(path, 1); }) ==
          path.string() + ": has bytes after its gzip data that are not another gzip member");
}

TEST_CASE("images and labels must agree")
{
    const auto images = scratch_file("images-idx3"), labels = scratch_file("labels-idx1");
    write_bytes(images, idx_header(0x0803, {2, 1, 1}) + "\x01\x02");
    write_bytes(labels, idx_header(0x0801, {3}) + "\x01\x02\x03");
    CHECK(error_of([&] { data::read_image_set(images, labels); }) ==
          labels.string() + ": has 3 labels, but " + images.string() + " has 2 images");
    write_bytes(labels, idx_header(0x0801, {2}) + "\x01\x0b");
    CHECK(error_of([&] { data::read_image_set(images, labels); }) ==
          labels.string() + ": label 11 of example 1 is not a class below 10");
    write_bytes(labels, idx_header(0x0801, {2}) + "\x01\x09");
    const auto set = data::read_image_set(images, labels);
    CHECK(set.size() == 2);
    CHECK(set.labels[1] == 9);
}

TEST_CASE("the real Fashion-MNIST from Debian's dataset-fashion-mnist reads whole")
{
    REQUIRE_MESSAGE(fs::exists(data::default_fashion_mnist_dir),
                    "install Debian's dataset-fashion-mnist (scripts/install-deps.sh does)");
    const auto test = data::read_fashion_mnist(data::default_fashion_mnist_dir, "t10k");
    CHECK(test.size() == 10000);
    std::array<int, 10> per_class{};
    for (int label : test.labels)
        ++per_class[static_cast<std::size_t>(label)];
    for (int count : per_class)
        CHECK(count == 1000);
    const auto train = data::read_fashion_mnist(data::default_fashion_mnist_dir, "train");
    CHECK(train.size() == 60000);
    CHECK(train.labels[0] == 9); // the first training image is an ankle boot
}
