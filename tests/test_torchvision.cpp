// Batch norm, adaptive average pooling and the torchvision VGG family against PyTorch
// (tools/make_torchvision_golden.py writes the fixture).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>

#include <nlohmann/json.hpp>

#include <vgg/vgg.hpp>

#include "gradient_check.hpp"

using namespace vgg;

namespace {

const nlohmann::json& torchvision_golden()
{
    static const nlohmann::json parsed = [] {
        std::ifstream in(std::string(VGG_TEST_DATA_DIR) + "/torchvision_golden.json");
        REQUIRE_MESSAGE(in, "missing tests/data/torchvision_golden.json (tools/make_torchvision_golden.py writes it)");
        return nlohmann::json::parse(in);
    }();
    return parsed;
}

template <class Values>
void check_close(const std::string& what, const Values& actual, const nlohmann::json& expected, double tolerance = 1e-5)
{
    REQUIRE(actual.size() == expected.size());
    for (std::size_t i = 0; i < actual.size(); ++i) {
        const double want = expected[i].get<double>();
        if (std::abs(actual[i] - want) > tolerance * std::max(1.0, std::abs(want)))
            FAIL_CHECK(what << "[" << i << "]: " << actual[i] << ", PyTorch " << want);
    }
}

template <class Tensor>
void fill(Tensor& t, const nlohmann::json& values)
{
    REQUIRE(t.size() == values.size());
    for (std::size_t i = 0; i < t.size(); ++i)
        t.data()[i] = values[i].get<float>();
}

template <class Span>
void fill_span(Span&& s, const nlohmann::json& values)
{
    REQUIRE(s.size() == values.size());
    for (std::size_t i = 0; i < s.size(); ++i)
        s[i] = values[i].get<float>();
}

using bn_shape = shape<4, 5, 6>;
using bn_layer = batchnorm2d_layer<4, bn_shape>;

/// The golden case's layer after one forward and backward pass in `pass_mode`, and the outputs
/// and gradients it gave, each checked against PyTorch's.
std::unique_ptr<bn_layer> check_batchnorm_pass(mode pass_mode, const nlohmann::json& want)
{
    const auto& g = torchvision_golden()["batchnorm"];
    auto layer = std::make_unique<bn_layer>();
    fill_span(layer->weight.value, g["weight"]);
    fill_span(layer->bias.value, g["bias"]);
    fill_span(layer->running_mean.value, g["running_mean"]);
    fill_span(layer->running_var.value, g["running_var"]);
    tensor<bn_shape> x(3), y, dy(3), dx;
    fill(x, g["x"]);
    fill(dy, g["dy"]);
    layer->forward(x, y, {pass_mode, 0});
    layer->backward(x, y, dy, &dx);
    check_close("y", y.values(), want["y"]);
    check_close("dx", dx.values(), want["dx"], 1e-4);
    check_close("dweight", layer->weight.grad, want["dweight"], 1e-4);
    check_close("dbias", layer->bias.grad, want["dbias"]);
    return layer;
}

} // namespace

TEST_CASE("BatchNorm2d in training: output, running statistics and gradients match PyTorch")
{
    const auto& want = torchvision_golden()["batchnorm"]["train"];
    const auto layer = check_batchnorm_pass(mode::train, want);
    check_close("running_mean", layer->running_mean.value, want["running_mean"]);
    check_close("running_var", layer->running_var.value, want["running_var"]);
}

TEST_CASE("BatchNorm2d in evaluation uses the running statistics, forward and backward, as PyTorch")
{
    const auto& g = torchvision_golden()["batchnorm"];
    const auto layer = check_batchnorm_pass(mode::eval, g["eval"]);
    check_close("running_mean (unchanged)", layer->running_mean.value, g["running_mean"]);
    check_close("running_var (unchanged)", layer->running_var.value, g["running_var"]);
}

TEST_CASE("BatchNorm2d refuses to train on one value per channel, as PyTorch does")
{
    batchnorm2d_layer<2, shape<2, 1, 1>> layer;
    tensor<shape<2, 1, 1>> x(1), y;
    CHECK_THROWS_WITH_AS(layer.forward(x, y, {mode::train, 0}),
                         doctest::Contains("BatchNorm2d: training needs more than one value per channel"),
                         std::invalid_argument);
    CHECK_NOTHROW(layer.forward(x, y, {mode::eval, 0}));
}

TEST_CASE("AdaptiveAvgPool2d with overlapping windows matches PyTorch, forward and backward")
{
    const auto& g = torchvision_golden()["adaptive_avgpool"];
    adaptive_avgpool2d_layer<7, 4, shape<3, 10, 9>> layer;
    tensor<shape<3, 10, 9>> x(2), dx;
    tensor<shape<3, 7, 4>> y, dy(2);
    fill(x, g["x"]);
    fill(dy, g["dy"]);
    layer.forward(x, y, {});
    layer.backward(x, y, dy, &dx);
    check_close("y", y.values(), g["y"]);
    check_close("dx", dx.values(), g["dx"]);
}

TEST_CASE("the torchvision VGG family has torchvision's parameter counts")
{
    const auto& m = torchvision_golden()["models"];
    CHECK(vgg11<>::parameter_count == m["vgg11"]["parameters"].get<std::size_t>());
    CHECK(vgg13<>::parameter_count == m["vgg13"]["parameters"].get<std::size_t>());
    CHECK(vgg16<>::parameter_count == m["vgg16"]["parameters"].get<std::size_t>());
    CHECK(vgg19<>::parameter_count == m["vgg19"]["parameters"].get<std::size_t>());
    CHECK(vgg11_bn<>::parameter_count == m["vgg11_bn"]["parameters"].get<std::size_t>());
    CHECK(vgg13_bn<>::parameter_count == m["vgg13_bn"]["parameters"].get<std::size_t>());
    CHECK(vgg16_bn<>::parameter_count == m["vgg16_bn"]["parameters"].get<std::size_t>());
    CHECK(vgg19_bn<>::parameter_count == m["vgg19_bn"]["parameters"].get<std::size_t>());
}

namespace {

/// "name[shape] ..." for a network's state, in visiting order.
template <class Net>
std::string state_names(Net& net)
{
    std::ostringstream out;
    net.visit_parameters([&](const parameter_view& p) { out << p.name << nlohmann::json(p.shape).dump() << ' '; });
    return out.str();
}

std::string torchvision_names(const std::string& model)
{
    std::ostringstream out;
    for (const auto& entry : torchvision_golden()["models"][model]["state_dict"]) {
        const std::string name = entry[0];
        if (!name.ends_with("num_batches_tracked"))
            out << name << entry[1].dump() << ' ';
    }
    return out.str();
}

} // namespace

TEST_CASE("torchvision models name their state as torchvision's state_dict, in the same order")
{
    // The classifier's sizes do not depend on the input (the pool makes it 7x7), so a small
    // input builds the same state as 224x224.
    auto bn = std::make_unique<vgg11_bn<shape<3, 32, 32>>>();
    CHECK(state_names(*bn) == torchvision_names("vgg11_bn"));
    auto plain = std::make_unique<vgg16<shape<3, 32, 32>>>();
    CHECK(state_names(*plain) == torchvision_names("vgg16"));
}

TEST_CASE("a batch-norm VGG block evaluates folded exactly as its layers evaluate one by one, backward included")
{
    using block_t = vgg_block_bn_layer<2, 3, 8, shape<3, 12, 10>>;
    auto block = std::make_unique<block_t>();
    rng random(5);
    block->initialize(weight_init::pytorch_default, random);
    block->visit_parameters("", [&](const parameter_view& p) {
        if (!p.trainable) // running variance positive, running mean anywhere
            testing::fill_uniform(p.value, random, p.name.ends_with("var") ? 0.5f : -0.5f, 1.5f);
        else if (p.shape.size() == 1)
            testing::fill_uniform(p.value, random, 0.5f, 1.5f);
    });
    tensor<shape<3, 12, 10>> x(3), dx_folded, dx_layers;
    testing::fill_uniform(x.values(), random);
    tensor<shape<8, 6, 5>> y, dy(3);
    testing::fill_uniform(dy.values(), random);

    block->forward(x, y, {mode::eval, 0});
    block->backward(x, y, dy, &dx_folded);
    const auto& unfolded = block->layers.forward(x, {mode::eval, 0});
    REQUIRE(unfolded.size() == y.size());
    for (std::size_t i = 0; i < y.size(); ++i)
        CHECK(y.data()[i] == doctest::Approx(unfolded.data()[i]).epsilon(1e-5).scale(1.0));
    block->layers.backward(dy, &dx_layers);
    for (std::size_t i = 0; i < dx_layers.size(); ++i)
        CHECK(dx_folded.data()[i] == dx_layers.data()[i]);
}

TEST_CASE("a batch-norm VGG block evaluates with the statistics it has now, after a training pass or an edit")
{
    // 16 channels at 8x8: Winograd, from transformed kernels kept between evaluations.
    using block_t = vgg_block_bn_layer<2, 16, 16, shape<16, 8, 8>>;
    auto block = std::make_unique<block_t>();
    rng random(6);
    block->initialize(weight_init::pytorch_default, random);
    tensor<shape<16, 8, 8>> x(2);
    testing::fill_uniform(x.values(), random);
    tensor<shape<16, 4, 4>> y;
    const auto check_against_layers = [&] {
        block->forward(x, y, {mode::eval, 0});
        const auto& unfolded = block->layers.forward(x, {mode::eval, 0});
        for (std::size_t i = 0; i < y.size(); ++i)
            CHECK(y.data()[i] == doctest::Approx(unfolded.data()[i]).epsilon(1e-5).scale(1.0));
    };
    check_against_layers();
    block->forward(x, y, {mode::train, 1}); // moves the running statistics
    check_against_layers();
    block->visit_parameters("", [&](const parameter_view& p) {
        if (p.name.ends_with("running_var")) // scales the folded weights
            testing::fill_uniform(p.value, random, 0.5f, 1.5f);
    });
    check_against_layers();
}

TEST_CASE("batch norm gradients: the layer and a batch-norm VGG block in training, the layer in evaluation")
{
    batchnorm2d_layer<3, shape<3, 4, 5>> norm;
    auto report = testing::check_layer(norm, 2);
    CHECK_MESSAGE(report.ok, report.message);
    report = testing::check_layer(norm, 2, 3, {mode::eval, 0});
    CHECK_MESSAGE(report.ok, report.message);
    auto block = std::make_unique<vgg_block_bn_layer<2, 2, 3, shape<2, 6, 4>>>();
    report = testing::check_layer(*block, 2);
    CHECK_MESSAGE(report.ok, report.message);
}
