// int8 networks quantised from trained fp32 ones: the same classes as fp32 on a task they learnt,
// with batch norm folded, the same logits from every kernel this CPU runs, and the rules of what
// quantisation accepts.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include <vgg/vgg.hpp>

#include "synthetic_task.hpp"
#include "test_support.hpp"

using namespace vgg;
using vgg::kernels::int8_kernel;

namespace {

using quadrant_net = Sequential<shape<1, 32, 32>, VGGBlock<1, 1, 8>, VGGBlock<2, 8, 16>, Flatten,
                                Linear<16 * 8 * 8, 64>, ReLU, Dropout<50>, Linear<64, 4>>;
using quadrant_net_bn = Sequential<shape<1, 32, 32>, VGGBlockBN<1, 1, 8>, VGGBlockBN<2, 8, 20>, Flatten,
                                   Linear<20 * 8 * 8, 40>, ReLU, Linear<40, 4>>;

static_assert(rules::int8_layers_supported_v<quadrant_net> && rules::int8_block_first_linear_last_v<quadrant_net> &&
              rules::int8_hidden_linears_have_relu_v<quadrant_net>);
static_assert(rules::int8_layers_supported_v<seed_vgg11> && rules::int8_layers_supported_v<vgg16_bn<>>);
static_assert(
    !rules::int8_layers_supported_v<Sequential<shape<1, 8, 8>, VGGBlock<1, 1, 4>, MaxPool2x2, Flatten, Linear<16, 2>>>);
static_assert(!rules::int8_layers_supported_v<vgg16<shape<3, 64, 64>>>, "an AdaptiveAvgPool2d that averages");
static_assert(!rules::int8_block_first_linear_last_v<Sequential<shape<2>, Linear<2, 2>>>);
static_assert(!rules::int8_hidden_linears_have_relu_v<
              Sequential<shape<1, 8, 8>, VGGBlock<1, 1, 4>, Flatten, Linear<64, 8>, Linear<8, 2>>>);

template <class Net>
std::unique_ptr<Net> xavier_network(rng& random)
{
    auto net = std::make_unique<Net>();
    net->initialize(weight_init::xavier_uniform, random);
    return net;
}

tensor<shape<1, 32, 32>> quadrant_images(rng& random, std::size_t count)
{
    tensor<shape<1, 32, 32>> images;
    std::vector<int> labels;
    testing::make_quadrant_batch(random, images, labels, count);
    return images;
}

int predicted(const float* logits, std::size_t classes)
{
    return int(std::max_element(logits, logits + classes) - logits);
}

/// The logits of the first `images` images.
template <class Logits>
std::vector<float> first_logits(const Logits& logits, std::size_t images)
{
    return std::vector<float>(logits.values().begin(), logits.values().begin() + long(images * 4));
}

template <class Net>
void check_quantised_classifies_as_fp32(std::uint64_t seed)
{
    rng random(seed);
    auto net = xavier_network<Net>(random);
    testing::train_on_quadrants(*net, random, seed, 150);
    tensor<shape<1, 32, 32>> calibration, x;
    std::vector<int> labels;
    testing::make_quadrant_batch(random, calibration, labels, 64);
    testing::make_quadrant_batch(random, x, labels, 200);
    const auto& fp32 = net->forward(x, {mode::eval});

    auto quantised = vgg::int8::quantize(*net, calibration);
    const auto& logits8 = quantised.forward(x);
    std::size_t right_fp32 = 0, right_int8 = 0, agree = 0;
    float largest = 0.f, worst = 0.f;
    for (std::size_t n = 0; n < x.batch(); ++n) {
        const int a = predicted(fp32.sample(n), 4), b = predicted(logits8.sample(n), 4);
        right_fp32 += a == labels[n];
        right_int8 += b == labels[n];
        agree += a == b;
        for (std::size_t k = 0; k < 4; ++k) {
            largest = std::max(largest, std::abs(fp32(n, k)));
            worst = std::max(worst, std::abs(fp32(n, k) - logits8(n, k)));
        }
    }
    MESSAGE(to_string(quantised.kernel())
            << ": accuracy fp32 " << right_fp32 << "/200, int8 " << right_int8 << "/200, same class " << agree
            << "/200, largest logit " << largest << ", largest difference " << worst);
    CHECK(right_fp32 > 190);
    CHECK(std::abs(double(right_int8) - double(right_fp32)) <= 2);
    CHECK(agree >= 196);
    CHECK(worst < 0.1f * largest);

    // Every kernel this CPU runs gives the same logits, at a batch of 40 and at one of 5 (the tiles'
    // edges).
    const auto reference = first_logits(logits8, 40);
    tensor<shape<1, 32, 32>> forty(40), five(5);
    std::copy_n(x.data(), forty.size(), forty.data());
    std::copy_n(x.data(), five.size(), five.data());
    for (const auto kernel : {int8_kernel::portable, int8_kernel::avx2, int8_kernel::avx512_vnni}) {
        if (!kernels::int8_kernel_runs(kernel)) {
            MESSAGE("not run here: " << kernels::int8_kernel_missing(kernel));
            continue;
        }
        CAPTURE(to_string(kernel));
        auto other = vgg::int8::quantize(*net, calibration, {.kernel = kernel});
        CHECK(first_logits(other.forward(forty), 40) == reference);
        CHECK(first_logits(other.forward(five), 5) == first_logits(logits8, 5));
    }
}

} // namespace

TEST_CASE("an int8 network quantised from a trained one classifies as it does, with the same logits on every kernel")
{
    SUBCASE("VGGBlock, Dropout") { check_quantised_classifies_as_fp32<quadrant_net>(11); }
    SUBCASE("VGGBlockBN, folded") { check_quantised_classifies_as_fp32<quadrant_net_bn>(12); }
}

TEST_CASE("an int8 network takes images with negative values through a zero point, RGB as grey")
{
    using rgb_net =
        Sequential<shape<3, 16, 16>, VGGBlock<1, 3, 16>, VGGBlock<2, 16, 32>, Flatten, Linear<32 * 4 * 4, 10>>;
    rng random(31);
    auto net = xavier_network<rgb_net>(random);
    tensor<shape<3, 16, 16>> calibration(32), x(8);
    for (auto* images : {&calibration, &x})
        for (auto& v : images->values())
            v = random.uniform() * 4.5f - 2.f; // as ImageNet's normalisation leaves pixels: [-2, 2.5]
    auto quantised = vgg::int8::quantize(*net, calibration);
    const auto& image = quantised.layers()[0].input;
    CHECK(image.zero_point > 90);
    CHECK(image.zero_point < 125);
    const auto& fp32 = net->forward(x, {mode::eval});
    const float difference = testing::relative_difference(quantised.forward(x).values(), fp32.values());
    MESSAGE("image zero point " << image.zero_point << ", largest logit difference " << difference
                                << " of the largest logit");
    CHECK(difference < 0.05f);
}

TEST_CASE("int8 quantisation refuses an empty calibration set and reports which layers are int8")
{
    rng random(3);
    auto net = xavier_network<quadrant_net>(random);
    CHECK_THROWS_WITH_AS(vgg::int8::quantize(*net, tensor<shape<1, 32, 32>>(0)),
                         "int8 quantisation needs calibration images: the calibration set is empty",
                         std::invalid_argument);
    const auto calibration = quadrant_images(random, 16);
    CHECK_THROWS_WITH_AS(vgg::int8::quantize(*net, calibration, {.batch = 0}),
                         "int8 quantisation: quantize_options::batch (images per calibration pass) must be at least 1",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(
        vgg::int8::quantize(*net, calibration, {.method = vgg::int8::calibration_method::percentile, .percentile = 0}),
        "calibration percentile 0.000000 is outside (0, 100]", std::invalid_argument);
    const auto quantised = vgg::int8::quantize(*net, calibration);
    REQUIRE(quantised.layers().size() == 5); // the convolutions and the Linear layers
    CHECK(quantised.layers()[0].name == "layer 0, convolution 0");
    CHECK(quantised.layers()[2].name == "layer 1, convolution 1");
    CHECK(quantised.layers()[4].name == "layer 6 (Linear)");
    for (std::size_t k = 0; k < 5; ++k) {
        CHECK(quantised.layers()[k].input.scale > 0.f);
        CHECK(quantised.layers()[k].input.zero_point == 0); // the images are not negative
    }
}

TEST_CASE("an int8 network gives NaN logits for an image with a NaN pixel, refuses NaN weights, and takes an empty "
          "batch")
{
    rng random(5);
    auto net = xavier_network<quadrant_net>(random);
    auto images = quadrant_images(random, 3);
    auto quantised = vgg::int8::quantize(*net, images);
    images(1, 0, 7, 9) = std::numeric_limits<float>::quiet_NaN();
    const auto& logits = quantised.forward(images);
    for (std::size_t k = 0; k < 4; ++k) {
        CHECK(std::isfinite(logits(0, k)));
        CHECK(std::isnan(logits(1, k)));
        CHECK(std::isfinite(logits(2, k)));
    }
    CHECK(quantised.forward(tensor<shape<1, 32, 32>>(0)).batch() == 0);

    net->layer<3>().weight.value[17] = std::numeric_limits<float>::infinity();
    CHECK_THROWS_WITH_AS(vgg::int8::quantize(*net, images),
                         "int8 quantisation: layer 3 (Linear) has a NaN or infinite weight or bias",
                         std::invalid_argument);
}

namespace {

/// The file `from` written again to `to` with `change` applied to its tensors first.
void rewrite_int8_file(const std::filesystem::path& from, const std::filesystem::path& to,
                       const std::function<void(io::safetensors_content&)>& change)
{
    auto content = io::read_safetensors(from);
    change(content);
    std::vector<io::tensor_to_write> tensors;
    for (const auto& [name, t] : content.tensors)
        tensors.push_back({.name = name, .shape = t.shape, .values = t.values, .int8_values = t.int8_values});
    io::write_safetensors(to, tensors, content.metadata);
}

template <class Net>
void check_saved_and_read_back(const std::string& weight_names)
{
    rng random(21);
    auto net = xavier_network<Net>(random);
    const auto calibration = quadrant_images(random, 16), x = quadrant_images(random, 7);
    auto quantised = vgg::int8::quantize(*net, calibration);
    const auto path = testing::scratch_file("quantised.safetensors");
    quantised.save(path);
    CHECK(io::read_safetensors(path).metadata.at("layers") == weight_names);

    vgg::int8::quantized_network<Net> read_back(path);
    const auto expected = first_logits(quantised.forward(x), 7);
    CHECK(first_logits(read_back.forward(x), 7) == expected);
    REQUIRE(read_back.layers().size() == quantised.layers().size());
    for (std::size_t k = 0; k < quantised.layers().size(); ++k) {
        CHECK(read_back.layers()[k].name == quantised.layers()[k].name);
        CHECK(read_back.layers()[k].input.scale == quantised.layers()[k].input.scale);
        CHECK(read_back.layers()[k].input.zero_point == quantised.layers()[k].input.zero_point);
    }
    // The fp32 loader names what the file is.
    CHECK(testing::error_of([&] { io::load_weights(*net, path); }) ==
          path.string() + ": is an int8 network, not fp32 weights: load it as vgg::int8::quantized_network<Net>(path)");
}

} // namespace

TEST_CASE("an int8 network saved to safetensors reads back to the same logits, with its weights' names")
{
    SUBCASE("VGGBlock")
    {
        check_saved_and_read_back<quadrant_net>("0.0.weight,1.0.weight,1.2.weight,3.weight,6.weight");
    }
    SUBCASE("VGGBlockBN, folded")
    {
        check_saved_and_read_back<quadrant_net_bn>("0.0.weight,1.0.weight,1.3.weight,3.weight,5.weight");
    }
}

TEST_CASE("an int8 file of another network, of fp32 weights or with a bad value is refused, naming the tensor")
{
    rng random(22);
    auto net = xavier_network<quadrant_net>(random);
    const auto calibration = quadrant_images(random, 8);
    const auto good = testing::scratch_file("good_int8.safetensors");
    vgg::int8::quantize(*net, calibration).save(good);
    const auto bad = testing::scratch_file("bad_int8.safetensors");
    const auto read_error = [&](const std::function<void(io::safetensors_content&)>& change) {
        rewrite_int8_file(good, bad, change);
        return testing::error_of([&] { vgg::int8::quantized_network<quadrant_net> read(bad); });
    };
    const std::string p = bad.string() + ": ";

    CHECK(testing::error_of([&] { vgg::int8::quantized_network<quadrant_net_bn> read(good); }) ==
          good.string() + ": tensor \"1.0.weight\" is I8 [16, 8, 3, 3], but this network needs I8 [20, 8, 3, 3]");
    const auto fp32 = testing::scratch_file("fp32.safetensors");
    io::save_weights(*net, fp32);
    CHECK(testing::error_of([&] { vgg::int8::quantized_network<quadrant_net> read(fp32); }) ==
          fp32.string() + ": is not an int8 network (its metadata has no \"format\": \"vgg int8 network\"): make one "
                          "with vgg::int8::quantize and save it");
    CHECK(read_error([](auto& c) { c.tensors.at("1.2.weight").int8_values[5] = -65; }) ==
          p + "tensor \"1.2.weight\" holds -65 at index 5: vgg's int8 weights lie in [-64, 64] (AVX2 sums pairs of "
              "u8 x s8 products in int16)");
    CHECK(read_error([](auto& c) { c.tensors.at("3.input_scale").values[0] = 0.f; }) ==
          p + "tensor \"3.input_scale\" holds 0.000000 at index 0: its values must be finite and above zero");
    CHECK(read_error([](auto& c) { c.tensors.at("6.bias").values[1] = std::numeric_limits<float>::quiet_NaN(); }) ==
          p + "tensor \"6.bias\" holds nan at index 1: its values must be finite");
    CHECK(read_error([](auto& c) { c.tensors.at("0.0.input_zero_point").values[0] = 2.5f; }) ==
          p + "tensor \"0.0.input_zero_point\" holds 2.500000: a zero point is a whole number from 0 to 255");
    CHECK(read_error([](auto& c) { c.tensors.erase("1.0.weight_scale"); }) ==
          p + "tensor \"1.0.weight_scale\" [16] is missing (is this an int8 file of another architecture?)");
    CHECK(read_error([](auto& c) { c.tensors["extra"] = c.tensors.at("6.bias"); }) ==
          p + "tensor \"extra\" belongs to no layer of this network");
    CHECK(read_error([](auto& c) { c.metadata["layers"] = "0.0.weight,1.0.weight"; }) ==
          p + "holds 2 convolutions and fully connected layers, but this network has 5");
    CHECK(read_error([](auto& c) {
              c.tensors.at("0.0.bias").values.clear();
              c.tensors.at("0.0.bias").int8_values.assign(8, 1);
          }) == p + "tensor \"0.0.bias\" is I8 [8], but this network needs F32 [8]");
}

TEST_CASE("an int8 network made from parts that are not the network's layers is refused, naming the layer")
{
    rng random(23);
    auto net = xavier_network<quadrant_net>(random);
    const auto good = vgg::int8::quantize(*net, quadrant_images(random, 8));
    using parts_t = std::vector<vgg::int8::int8_layer_parts>;
    const auto make = [&](const std::function<void(parts_t&)>& change) {
        parts_t parts = good.parts();
        change(parts);
        vgg::int8::quantized_network<quadrant_net> made(std::move(parts));
    };
    const auto& names = good.parts();
    CHECK_NOTHROW(make([](parts_t&) {}));
    CHECK_THROWS_WITH_AS(make([](parts_t& p) { p.pop_back(); }), "int8 network: 4 layers given, the network has 5",
                         std::invalid_argument);
    CHECK_THROWS_WITH_AS(make([](parts_t& p) { p[1].weights.scales.pop_back(); }),
                         ("int8 network: " + names[1].layer.name +
                          ": the layer given differs from the network's in kind, size or count of values")
                             .c_str(),
                         std::invalid_argument);
    const std::string out_of_range = ": a weight beyond weight_code_limit, a scale not above zero or a zero point out "
                                     "of range (0 to 255 for the image, 0 after)";
    CHECK_THROWS_WITH_AS(make([](parts_t& p) { p[2].weights.values[0] = 65; }),
                         ("int8 network: " + names[2].layer.name + out_of_range).c_str(), std::invalid_argument);
    CHECK_THROWS_WITH_AS(make([](parts_t& p) { p[3].input.zero_point = 1; }),
                         ("int8 network: " + names[3].layer.name + out_of_range).c_str(), std::invalid_argument);
    CHECK_NOTHROW(make([](parts_t& p) { p[2].weights.values[0] = 64; })); // reduce_range's limit
}
