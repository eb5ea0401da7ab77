// data::image_folder (torchvision's ImageFolder layout) and vgg::fit training from it.
#include <doctest/doctest.h>

#include "test_support.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <filesystem>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <vgg/data/image_folder.hpp>
#include <vgg/image/decode.hpp>
#include <vgg/train/fit.hpp>
#include <vgg/vgg.hpp>

using namespace vgg;
using vgg::testing::error_of;
using vgg::testing::scratch_file;
using vgg::testing::write_bytes;
namespace fs = std::filesystem;

namespace {

const fs::path corpus = fs::path(VGG_TEST_SOURCE_DIR) / "fuzz" / "corpus" / "image";

/// A binary PPM (channels 3) or PGM (channels 1) of the given pixels, row by row.
void write_pnm(const fs::path& path, std::size_t width, std::size_t height, std::size_t channels,
               const std::vector<std::uint8_t>& pixels)
{
    fs::create_directories(path.parent_path());
    std::ostringstream out;
    out << (channels == 3 ? "P6" : "P5") << '\n' << width << ' ' << height << "\n255\n";
    out.write(reinterpret_cast<const char*>(pixels.data()), std::streamsize(pixels.size()));
    write_bytes(path, out.str());
}

/// A fresh, empty folder for one test case.
fs::path fresh_folder(const std::string& name)
{
    const auto root = scratch_file(name);
    fs::remove_all(root);
    fs::create_directories(root);
    return root;
}

/// Pixel (x, y) of channel c of a 4x3 test picture.
std::uint8_t pattern(std::size_t x, std::size_t y, std::size_t c) { return std::uint8_t(10 * x + 50 * y + 100 * c); }

std::vector<std::uint8_t> pattern_pixels(std::size_t channels)
{
    std::vector<std::uint8_t> pixels;
    for (std::size_t y = 0; y < 3; ++y)
        for (std::size_t x = 0; x < 4; ++x)
            for (std::size_t c = 0; c < channels; ++c)
                pixels.push_back(pattern(x, y, c));
    return pixels;
}

} // namespace

TEST_CASE("16-bit PGM and PPM files decode as their 8-bit versions, to grey and to RGB")
{
    // stb_image 2.27 converts 16-bit samples between grey and RGB as if they were 8-bit, reading
    // past its buffer (found by the fuzzer); decode converts those channels itself.
    for (std::size_t channels : {1, 3}) {
        const auto pixels = pattern_pixels(channels);
        std::ostringstream wide;
        wide << (channels == 3 ? "P6" : "P5") << "\n4 3\n65535\n";
        for (const std::uint8_t value : pixels) // value * 257: the same brightness in 16 bits
            wide << char(value) << char(value);
        const auto narrow_path = scratch_file("narrow.pnm"), wide_path = scratch_file("wide.pnm");
        write_pnm(narrow_path, 4, 3, channels, pixels);
        write_bytes(wide_path, wide.str());
        for (std::size_t wanted : {1, 3}) {
            CAPTURE(channels);
            CAPTURE(wanted);
            const auto expected = image::read(narrow_path, wanted), decoded = image::read(wide_path, wanted);
            CHECK(decoded.width == 4);
            CHECK(decoded.height == 3);
            CHECK(decoded.channels == wanted);
            CHECK(decoded.values == expected.values);
        }
    }
}

TEST_CASE("image_folder finds classes and images as torchvision's ImageFolder does")
{
    const auto root = fresh_folder("layout");
    // Classes are numbered by name; images are found in sub-folders too, by extension in any case.
    fs::create_directories(root / "b-cats" / "more");
    fs::create_directories(root / "a-dogs");
    fs::copy_file(corpus / "picture-rgb.jpeg", root / "b-cats" / "2.jpeg");
    fs::copy_file(corpus / "picture-rgba.png", root / "b-cats" / "more" / "1.PNG");
    fs::copy_file(corpus / "picture-rgb.bmp", root / "a-dogs" / "x.bmp");
    fs::copy_file(corpus / "picture-l.ppm", root / "a-dogs" / "y.ppm");
    write_bytes(root / "a-dogs" / "notes.txt", "not an image");
    write_bytes(root / "README", "a file beside the class folders");

    const data::image_folder<shape<3, 16, 12>> folder(root);
    CHECK(folder.classes() == 2);
    CHECK(folder.class_names() == std::vector<std::string>{"a-dogs", "b-cats"});
    REQUIRE(folder.size() == 4);
    CHECK(folder.file(0).filename() == "x.bmp");
    CHECK(folder.file(1).filename() == "y.ppm");
    CHECK(folder.file(2).filename() == "2.jpeg");
    CHECK(folder.file(3) == root / "b-cats" / "more" / "1.PNG");
    CHECK(folder.label(0) == 0);
    CHECK(folder.label(3) == 1);
    static_assert(data::dataset_for<data::image_folder<shape<3, 16, 12>>, shape<3, 16, 12>>);

    tensor<shape<3, 16, 12>> images;
    std::vector<int> labels;
    const std::vector<std::size_t> batch{3, 0};
    folder.load_batch(batch, images, labels);
    CHECK(labels == std::vector<int>{1, 0});
    for (std::size_t n = 0; n < 2; ++n) {
        // What the folder gives is the file decoded and resized by the library's own functions.
        const auto planes = image::resized_planes(image::read(folder.file(batch[n]), 3), 16, 12);
        for (std::size_t i = 0; i < planes.size(); ++i)
            REQUIRE(images.sample(n)[i] == doctest::Approx(planes[i] / 255.f));
    }
}

TEST_CASE("image_folder scales to [0, 1], normalises per channel and reads grey or RGB as the shape says")
{
    const auto root = fresh_folder("values");
    write_pnm(root / "only" / "p.ppm", 4, 3, 3, pattern_pixels(3));
    data::image_folder_options normalised;
    normalised.mean = data::imagenet_mean;
    normalised.std = data::imagenet_std;
    const data::image_folder<shape<3, 3, 4>> rgb(root, normalised);
    tensor<shape<3, 3, 4>> images;
    std::vector<int> labels;
    rgb.load_batch(std::vector<std::size_t>{0}, images, labels);
    for (std::size_t c = 0; c < 3; ++c)
        for (std::size_t y = 0; y < 3; ++y)
            for (std::size_t x = 0; x < 4; ++x)
                CHECK(images(0, c, y, x) ==
                      doctest::Approx((pattern(x, y, c) / 255.f - data::imagenet_mean[c]) / data::imagenet_std[c])
                          .epsilon(1e-6));

    const auto grey_root = fresh_folder("grey");
    write_pnm(grey_root / "only" / "p.pgm", 4, 3, 1, pattern_pixels(1));
    const data::image_folder<shape<1, 3, 4>> grey(grey_root);
    tensor<shape<1, 3, 4>> grey_images;
    grey.load_batch(std::vector<std::size_t>{0}, grey_images, labels);
    CHECK(grey_images(0, 0, 2, 3) == doctest::Approx(pattern(3, 2, 0) / 255.f));
}

TEST_CASE("image_folder's random flips and crops follow the key, and only training batches get them")
{
    const auto root = fresh_folder("augment");
    write_pnm(root / "only" / "p.pgm", 4, 3, 1, pattern_pixels(1));
    data::image_folder_options options;
    options.random_horizontal_flip = true;
    options.random_crop_padding = 1;
    const data::image_folder<shape<1, 3, 4>> folder(root, options);
    tensor<shape<1, 3, 4>> plain, augmented, again;
    std::vector<int> labels;
    const std::vector<std::size_t> first{0};
    folder.load_batch(first, plain, labels);
    for (std::size_t y = 0; y < 3; ++y)
        for (std::size_t x = 0; x < 4; ++x)
            REQUIRE(plain(0, 0, y, x) == doctest::Approx(pattern(x, y, 0) / 255.f));

    std::set<std::tuple<int, long, long>> seen; // (flip, dy, dx)
    for (std::uint64_t stream = 0; stream < 200; ++stream) {
        folder.load_batch(first, augmented, labels, {stream, 0});
        folder.load_batch(first, again, labels, {stream, 0});
        REQUIRE(std::equal(augmented.values().begin(), augmented.values().end(), again.values().begin()));
        // Every result is the picture, perhaps mirrored, moved by at most one pixel, zeros coming in.
        bool explained = false;
        for (int flip = 0; flip < 2 && !explained; ++flip)
            for (long dy = -1; dy <= 1 && !explained; ++dy)
                for (long dx = -1; dx <= 1 && !explained; ++dx) {
                    bool all = true;
                    for (long y = 0; y < 3; ++y)
                        for (long x = 0; x < 4; ++x) {
                            const long sy = y + dy, sx = (flip ? 3 - x : x) + dx;
                            const float want = sy >= 0 && sy < 3 && sx >= 0 && sx < 4
                                                   ? pattern(std::size_t(sx), std::size_t(sy), 0) / 255.f
                                                   : 0.f;
                            all = all && std::abs(augmented(0, 0, std::size_t(y), std::size_t(x)) - want) < 1e-6f;
                        }
                    if (all) {
                        explained = true;
                        seen.insert({flip, dy, dx});
                    }
                }
        REQUIRE_MESSAGE(explained, "stream " << stream << " gave a picture no flip and shift explains");
    }
    CHECK(seen.size() == 18); // both flips and all nine shifts occur
}

TEST_CASE("image_folder errors name the folder or file at fault")
{
    CHECK(error_of([] {
              data::image_folder<shape<1, 4, 4>> f(scratch_file("no-such-folder"));
          }).find("is not a folder") != std::string::npos);
    const auto empty = fresh_folder("no-classes");
    CHECK(error_of([&] { data::image_folder<shape<1, 4, 4>> f(empty); }).find("holds no class folders") !=
          std::string::npos);

    const auto root = fresh_folder("bad");
    write_pnm(root / "good" / "p.pgm", 4, 3, 1, pattern_pixels(1));
    fs::create_directories(root / "empty");
    CHECK(error_of([&] { data::image_folder<shape<1, 4, 4>> f(root); }) ==
          (root / "empty").string() + ": holds no image files (.jpg .jpeg .png .pgm .ppm .bmp)");
    write_bytes(root / "empty" / "broken.png", "not a PNG at all");
    CHECK(error_of([&] {
              data::image_folder<shape<1, 4, 4>> f(root);
          }).rfind((root / "empty" / "broken.png").string() + ": cannot read as an image", 0) == 0);
    // Uncached, the error comes with the batch that reads the file.
    data::image_folder_options uncached;
    uncached.cache_bytes = 0;
    const data::image_folder<shape<1, 4, 4>> lazy(root, uncached);
    tensor<shape<1, 4, 4>> images;
    std::vector<int> labels;
    CHECK_NOTHROW(lazy.load_batch(std::vector<std::size_t>{1}, images, labels));
    CHECK(error_of([&] {
              lazy.load_batch(std::vector<std::size_t>{1, 0}, images, labels);
          }).find("broken.png: cannot read as an image") != std::string::npos);

    data::image_folder_options wrong;
    wrong.mean = {0.5f};
    wrong.std = {0.5f};
    CHECK_THROWS_WITH_AS((data::image_folder<shape<3, 4, 4>>(root, wrong)),
                         doctest::Contains("mean and std need 3 values each"), std::invalid_argument);
    // A std of 0, NaN or below 0 would turn every pixel into an infinity or a NaN.
    for (const float bad_std : {0.f, std::nanf(""), -0.5f}) {
        wrong.std = {bad_std};
        CHECK_THROWS_WITH_AS((data::image_folder<shape<1, 4, 4>>(root, wrong)),
                             doctest::Contains("the mean must be finite and the std finite and above 0"),
                             std::invalid_argument);
    }
    wrong.mean = {INFINITY};
    wrong.std = {0.5f};
    CHECK_THROWS_AS((data::image_folder<shape<1, 4, 4>>(root, wrong)), std::invalid_argument);
    data::image_folder_options crop;
    crop.random_crop_padding = 5;
    CHECK_THROWS_WITH_AS((data::image_folder<shape<1, 4, 4>>(root, crop)),
                         "image_folder: a random crop padding of 5 is more than the image's side (4)",
                         std::invalid_argument);
}

TEST_CASE("image_folder skips unreadable files when asked, and lists them, and a class left empty is an error")
{
    const auto root = fresh_folder("skipping");
    write_pnm(root / "a" / "1.pgm", 4, 3, 1, pattern_pixels(1));
    write_pnm(root / "a" / "2.pgm", 4, 3, 1, pattern_pixels(1));
    write_pnm(root / "b" / "1.pgm", 4, 3, 1, pattern_pixels(1));
    write_bytes(root / "a" / "broken.jpg", "not a JPEG");
    write_bytes(root / "b" / "empty.png", "");
    data::image_folder_options skip;
    skip.unreadable = data::unreadable_images::skip;
    for (const std::size_t cache_bytes : {std::size_t(1) << 20, std::size_t(0)}) {
        CAPTURE(cache_bytes);
        skip.cache_bytes = cache_bytes;
        const data::image_folder<shape<1, 4, 4>> folder(root, skip);
        REQUIRE(folder.size() == 3);
        CHECK(folder.label(0) == 0);
        CHECK(folder.label(1) == 0);
        CHECK(folder.label(2) == 1);
        CHECK(folder.file(2) == root / "b" / "1.pgm");
        REQUIRE(folder.skipped().size() == 2);
        CHECK(folder.skipped()[0].file == root / "a" / "broken.jpg");
        CHECK(folder.skipped()[0].reason.find("broken.jpg: cannot read as an image") != std::string::npos);
        CHECK(folder.skipped()[1].file == root / "b" / "empty.png");
        // The kept images are the ones their paths say (the cache was compacted with them).
        tensor<shape<1, 4, 4>> images;
        std::vector<int> labels;
        folder.load_batch(std::vector<std::size_t>{0, 1, 2}, images, labels);
        CHECK(labels == std::vector<int>{0, 0, 1});
        CHECK(images.sample(2)[0] == doctest::Approx(images.sample(0)[0]));
    }
    CHECK(error_of([&] { data::image_folder<shape<1, 4, 4>> f(root); }).find("broken.jpg: cannot read as an image") !=
          std::string::npos); // stopping is the default
    fs::remove(root / "b" / "1.pgm");
    CHECK(error_of([&] { data::image_folder<shape<1, 4, 4>> f(root, skip); }) ==
          (root / "b").string() + ": has no readable image: all its image files were skipped as unreadable");
}

TEST_CASE("a CMYK JPEG decodes as PIL converts it: each colour is (255 - ink) x (255 - black) / 255")
{
    // Photoshop stores CMYK inverted: these are the bytes libjpeg-turbo encodes and decodes.
    constexpr int side = 16;
    const std::array<std::uint8_t, 4> stored{200, 120, 40, 180};
    std::vector<std::uint8_t> cmyk;
    for (int i = 0; i < side * side; ++i)
        cmyk.insert(cmyk.end(), stored.begin(), stored.end());
    const std::unique_ptr<void, int (*)(tjhandle)> encoder(tjInitCompress(), tjDestroy);
    unsigned char* jpeg = nullptr;
    unsigned long jpeg_size = 0;
    REQUIRE(tjCompress2(encoder.get(), cmyk.data(), side, 0, side, TJPF_CMYK, &jpeg, &jpeg_size, TJSAMP_444, 100, 0) ==
            0);
    const std::vector<std::uint8_t> bytes(jpeg, jpeg + jpeg_size);
    tjFree(jpeg);
    const auto rgb = image::decode(bytes, "cmyk.jpg", 3);
    REQUIRE(rgb.values.size() == side * side * 3);
    for (std::size_t c = 0; c < 3; ++c)
        CHECK(std::abs(int(rgb.values[c]) - stored[c] * stored[3] / 255) <= 2);
    const auto grey = image::decode(bytes, "cmyk.jpg", 1);
    const int expected_grey =
        (stored[0] * stored[3] / 255 * 77 + stored[1] * stored[3] / 255 * 150 + stored[2] * stored[3] / 255 * 29) >> 8;
    CHECK(std::abs(int(grey.values[0]) - expected_grey) <= 2);
}

TEST_CASE("fit refuses a test set whose classes are named otherwise than the training set's")
{
    const auto root = fresh_folder("renamed");
    for (const char* name : {"train/cat", "train/dog", "test/cat", "test/wolf"})
        write_pnm(root / name / "1.pgm", 4, 3, 1, pattern_pixels(1));
    const data::image_folder<shape<1, 4, 4>> train(root / "train"), test(root / "test");
    using net_t = Sequential<shape<1, 4, 4>, Flatten, Linear<16, 2>>;
    net_t net;
    sgd optimiser(0.1f);
    fit_options options;
    options.batch_size = 1;
    CHECK_THROWS_WITH_AS(fit(net, optimiser, train, test, options),
                         "fit: the training set's classes (cat, dog) are not the test set's (cat, wolf): label numbers "
                         "would name other classes in each",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(evaluate_accuracy(net, test, 0, precision::fp32), "evaluate_accuracy: the batch size is 0",
                         std::invalid_argument);
}

TEST_CASE("fit trains a batch-norm network from an image folder and refuses a folder with another class count")
{
    // Two classes anyone can tell apart: bright pictures and dark ones, with noise.
    const auto root = fresh_folder("fit");
    rng random(11);
    for (const char* split : {"train", "test"})
        for (int cls = 0; cls < 2; ++cls)
            for (int i = 0; i < 24; ++i) {
                std::vector<std::uint8_t> pixels(8 * 8);
                for (auto& p : pixels)
                    p = std::uint8_t(cls ? 150 + random.below(100) : random.below(100));
                write_pnm(root / split / (cls ? "bright" : "dark") / (std::to_string(i) + ".pgm"), 8, 8, 1, pixels);
            }
    const data::image_folder<shape<1, 8, 8>> train(root / "train"), test(root / "test");
    using net_t = Sequential<shape<1, 8, 8>, VGGBlockBN<1, 1, 4>, Flatten, Linear<64, 2>>;
    auto net = std::make_unique<net_t>();
    rng init(3);
    net->initialize(weight_init::xavier_uniform, init);
    sgd optimiser(0.1f, 0.9f);
    fit_options options;
    options.epochs = 3;
    options.batch_size = 8;
    options.out = scratch_file("fit-out");
    const auto result = fit(*net, optimiser, train, test, options);
    CHECK(result.test_acc == 1.0);
    CHECK(result.history.size() == 3 * 7); // a training point per batch (6 batches) and the test point, per epoch
    CHECK(fs::exists(options.out / "checkpoint.safetensors"));
    CHECK(fs::exists(options.out / "curves.svg"));

    using three_t = Sequential<shape<1, 8, 8>, VGGBlockBN<1, 1, 4>, Flatten, Linear<64, 3>>;
    auto three = std::make_unique<three_t>();
    CHECK_THROWS_WITH_AS(fit(*three, optimiser, train, test, options),
                         "fit: the network has 3 classes, but the training set has 2 and the test set 2",
                         std::invalid_argument);
}

TEST_CASE("fit's sharding rule: every process needs a part of every batch and of the test set")
{
    CHECK(sharding_problem(60000, 10000, 128, 1).empty());
    CHECK(sharding_problem(65, 2, 64, 1).empty()); // one process takes a last batch of 1
    CHECK(sharding_problem(60000, 10000, 128, 2).empty());
    CHECK(sharding_problem(100, 10, 0, 1) == "the batch size is 0");
    CHECK(sharding_problem(60000, 10000, 64, 3) == "the batch size 64 does not divide evenly over 3 processes");
    CHECK(sharding_problem(65, 64, 64, 2) ==
          "the last batch of an epoch holds 1 examples, fewer than the 2 processes: a process would get no data");
    CHECK(sharding_problem(64, 1, 64, 2) ==
          "the test set holds 1 examples, fewer than the 2 processes: a process would get no data");
}
