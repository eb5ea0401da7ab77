// ONNX export and import: vgg's models in ONNX Runtime (onnxruntime-node, tests/onnxruntime), files
// from torch.onnx.export (tests/onnx_reference.py) in vgg, round trips, and every way a file can
// disagree with the network.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <vgg/onnx.hpp>
#include <vgg/vgg.hpp>

#include "test_support.hpp"

using namespace vgg;
namespace fs = std::filesystem;
using vgg::testing::error_of;
using vgg::testing::relative_difference;
using vgg::testing::scratch_file;
using vgg::testing::values_of;

namespace {

using seed32 = VGG<shape<1, 32, 32>, small_conv_arch<vgg11_arch, 4>, 10>;
template <class Arch, std::size_t Size>
using torchvision_small = TorchvisionVGG<shape<3, Size, Size>, Arch, 10, 64>;
// Small networks for each way of exporting an adaptive pool: an AveragePool (4x4 to 2x2), vgg's
// pooling matrix (overlapping windows, 8x8 to 3x3).
using pooled_by_window =
    Sequential<shape<3, 8, 8>, VGGBlockBN<1, 3, 4>, AdaptiveAvgPool2d<2, 2>, Flatten, Linear<16, 5>>;
using pooled_by_matrix =
    Sequential<shape<3, 16, 16>, VGGBlock<2, 3, 4>, AdaptiveAvgPool2d<3, 3>, Flatten, Linear<36, 5>>;

template <class Net>
std::unique_ptr<Net> random_network(std::uint64_t seed)
{
    auto net = std::make_unique<Net>();
    rng random(seed);
    net->initialize(weight_init::xavier_uniform, random);
    // Biases, batch norm's scales and statistics away from 0 and 1.
    net->visit_parameters([&](const parameter_view& p) {
        const float low = p.name.ends_with("running_var") ? 0.5f : p.name.ends_with("running_mean") ? -0.25f : 0.75f;
        const bool scale_or_statistic = p.name.ends_with("running_var") || p.name.ends_with("running_mean") ||
                                        (p.shape.size() == 1 && p.name.ends_with("weight"));
        if (scale_or_statistic)
            for (auto& v : p.value)
                v = low + 0.5f * random.uniform();
        else if (p.shape.size() == 1)
            for (auto& v : p.value)
                v = 0.2f * random.uniform() - 0.1f;
    });
    return net;
}

template <class Shape>
tensor<Shape> random_images(std::size_t batch, std::uint64_t seed)
{
    tensor<Shape> x(batch);
    rng random(seed);
    for (auto& v : x.values())
        v = 2.f * random.uniform() - 1.f;
    return x;
}

template <class Net>
std::vector<float> logits_of(Net& net, const tensor<typename Net::input_shape>& x)
{
    const auto& y = net.forward(x, {mode::eval});
    return {y.values().begin(), y.values().end()};
}

/// The outputs ONNX Runtime computes for `x` with the model at `model`; skips the test when
/// onnxruntime-node is not installed.
template <class Shape>
std::vector<float> onnx_runtime_logits(const fs::path& model, const tensor<Shape>& x)
{
    const fs::path runner = fs::path(VGG_TEST_SOURCE_DIR) / "onnxruntime";
    if (!fs::exists(runner / "node_modules" / "onnxruntime-node"))
        testing::skip_because(
            "onnxruntime-node is not installed in tests/onnxruntime (bash scripts/install-deps.sh reference)");
    const auto input = scratch_file("ort-input.bin"), output = scratch_file("ort-output.bin");
    std::ofstream(input, std::ios::binary)
        .write(reinterpret_cast<const char*>(x.data()), std::streamsize(x.size() * sizeof(float)));
    using dims = image_dims<Shape>;
    std::ostringstream command;
    command << "node " << (runner / "run.js") << ' ' << model << ' ' << input << ' ' << x.batch() << ' '
            << dims::channels << ' ' << dims::height << ' ' << dims::width << ' ' << output << " > /dev/null";
    REQUIRE(std::system(command.str().c_str()) == 0);
    std::ifstream in(output, std::ios::binary);
    std::vector<float> values(fs::file_size(output) / sizeof(float));
    in.read(reinterpret_cast<char*>(values.data()), std::streamsize(values.size() * sizeof(float)));
    return values;
}

fs::path torch_reference()
{
    return testing::python_reference(VGG_TEST_SOURCE_DIR, VGG_TEST_BINARY_DIR, "onnx_reference.py", "onnx_reference");
}

/// Exports `net`, runs the file in ONNX Runtime and in vgg (after importing it into a fresh network).
template <class Net>
void check_export(const std::string& name, io::onnx_batch_norm batch_norm, float tolerance)
{
    CAPTURE(name);
    auto net = random_network<Net>(3);
    const auto x = random_images<typename Net::input_shape>(2, 4);
    const auto expected = logits_of(*net, x);
    const auto path = scratch_file(name + ".onnx");
    io::save_onnx(*net, path, {batch_norm});
    const float runtime_difference = relative_difference(onnx_runtime_logits(path, x), expected);
    MESSAGE(name << ": ONNX Runtime's logits against vgg's, largest difference over largest logit "
                 << runtime_difference);
    CHECK(runtime_difference < tolerance);

    auto imported = std::make_unique<Net>();
    const auto report = io::load_onnx(*imported, path);
    CHECK(report.producer == "vgg");
    CHECK(relative_difference(logits_of(*imported, x), expected) < tolerance);
    if (batch_norm == io::onnx_batch_norm::node)
        CHECK(values_of(*imported) == values_of(*net));
}

/// A model to change by hand, for the error cases.
template <class Net>
::onnx::ModelProto exported(Net& net)
{
    return io::to_onnx(net);
}

template <class Net>
std::string load_error(const ::onnx::ModelProto& model, const fs::path& path)
{
    auto net = random_network<Net>(9);
    const auto before = values_of(*net);
    std::string bytes;
    REQUIRE(model.SerializeToString(&bytes));
    const auto message = error_of([&] { io::load_onnx(*net, bytes, path); });
    CHECK(values_of(*net) == before); // nothing changed
    return message;
}

::onnx::NodeProto& node_of(::onnx::ModelProto& model, const std::string& op_type)
{
    for (auto& node : *model.mutable_graph()->mutable_node())
        if (node.op_type() == op_type)
            return node;
    throw std::logic_error("no " + op_type + " node");
}

} // namespace

TEST_CASE("vgg's ONNX export runs in ONNX Runtime with vgg's logits, and imports back to the same parameters")
{
    check_export<seed32>("seed32", io::onnx_batch_norm::node, 1e-5f);
    check_export<pooled_by_window>("pooled-by-window", io::onnx_batch_norm::node, 1e-5f);
    check_export<pooled_by_window>("pooled-by-window-folded", io::onnx_batch_norm::folded, 1e-5f);
    check_export<pooled_by_matrix>("pooled-by-matrix", io::onnx_batch_norm::node, 1e-5f);
    check_export<torchvision_small<batch_norm<vgg11_arch>, 32>>("vgg11_bn-32", io::onnx_batch_norm::node, 1e-5f);
    check_export<torchvision_small<batch_norm<vgg11_arch>, 32>>("vgg11_bn-32-folded", io::onnx_batch_norm::folded,
                                                                1e-5f);
    check_export<torchvision_small<vgg16_arch, 32>>("vgg16-32", io::onnx_batch_norm::node, 1e-5f);
}

TEST_CASE("the export names initializers as the network names its parameters and checks with ONNX's checker")
{
    auto net = random_network<torchvision_small<batch_norm<vgg11_arch>, 32>>(5);
    const auto model = io::to_onnx(*net);
    std::vector<std::string> names;
    for (const auto& t : model.graph().initializer())
        names.push_back(t.name());
    CHECK(names.front() == "features.0.weight");
    CHECK(std::find(names.begin(), names.end(), "features.1.running_var") != names.end());
    CHECK(std::find(names.begin(), names.end(), "classifier.6.bias") != names.end());
    CHECK(model.opset_import(0).version() == 17);
    CHECK(model.graph().input(0).type().tensor_type().shape().dim(0).dim_param() == "batch");
    CHECK(io::to_onnx(*net, {io::onnx_batch_norm::node, 13}).opset_import(0).version() == 13);
    CHECK_THROWS_WITH_AS(io::to_onnx(*net, {io::onnx_batch_norm::node, 12}), "to_onnx: opset 12 is not one of 13 to 17",
                         std::invalid_argument);
    net->visit_parameters([](const parameter_view& p) {
        if (p.name == "classifier.3.weight")
            p.value[0] = std::numeric_limits<float>::quiet_NaN();
    });
    const auto path = scratch_file("nan.onnx");
    CHECK(error_of([&] { io::save_onnx(*net, path); }) ==
          path.string() + ": not written: to_onnx: parameter \"classifier.3.weight\" holds a NaN or an infinity");
    CHECK(!fs::exists(path));
}

namespace {

/// Quantises `net` on `calibration`, exports it in QDQ form and runs the file in ONNX Runtime: the
/// logits vgg's int8 kernels give, within requantisation's rounding (ONNX Runtime rounds its own
/// int32 sums).
using rgb_bn = Sequential<shape<3, 16, 16>, VGGBlockBN<1, 3, 16>, VGGBlock<2, 16, 32>, Flatten, Linear<512, 32>, ReLU,
                          Dropout<50>, Linear<32, 10>>;

template <class Net>
void check_int8_export(const std::string& name, Net& net, const tensor<typename Net::input_shape>& calibration)
{
    CAPTURE(name);
    int8::quantized_network<Net> quantised(net, calibration);
    const auto x = random_images<typename Net::input_shape>(6, 8);
    const auto& int8_logits = quantised.forward(x);
    const std::vector<float> expected(int8_logits.values().begin(), int8_logits.values().end());
    const auto path = scratch_file(name + "-int8.onnx");
    int8::save_onnx(quantised, path);
    const float difference = relative_difference(onnx_runtime_logits(path, x), expected);
    MESSAGE(name << ": ONNX Runtime's logits of the QDQ file against vgg's int8 logits, largest difference over "
                    "largest logit "
                 << difference << "; vgg's int8 against its fp32 " << relative_difference(expected, logits_of(net, x)));
    CHECK(difference < 0.02f);
    CHECK(error_of([&] {
              io::load_onnx(net, path);
          }).starts_with(path.string() + ": is a quantised model (its node \"/"));

    // Every convolution and Gemm takes dequantised values: its input from u8 codes, its weight from
    // an INT8 initializer, its bias from an INT32 one.
    const auto model = int8::to_onnx(quantised);
    std::map<std::string, const ::onnx::NodeProto*> producer;
    std::map<std::string, int> initializer_type;
    for (const auto& node : model.graph().node())
        producer[node.output(0)] = &node;
    for (const auto& t : model.graph().initializer())
        initializer_type[t.name()] = t.data_type();
    const auto dequantised_from = [&](const std::string& value) {
        const auto* node = producer.count(value) ? producer[value] : nullptr;
        REQUIRE(node);
        CHECK(node->op_type() == "DequantizeLinear");
        return node->input(0);
    };
    std::size_t products = 0;
    for (const auto& node : model.graph().node()) {
        if (node.op_type() != "Conv" && node.op_type() != "Gemm")
            continue;
        ++products;
        CAPTURE(node.name());
        CHECK(producer.at(dequantised_from(node.input(0)))->op_type() == "QuantizeLinear");
        CHECK(initializer_type[dequantised_from(node.input(1))] == ::onnx::TensorProto::INT8);
        CHECK(initializer_type[dequantised_from(node.input(2))] == ::onnx::TensorProto::INT32);
    }
    CHECK(products == quantised.parts().size());
}

} // namespace

TEST_CASE("an int8 network exported in QDQ form runs in ONNX Runtime with vgg's int8 logits")
{
    auto rgb = random_network<rgb_bn>(21);
    check_int8_export("rgb-bn", *rgb, random_images<shape<3, 16, 16>>(32, 22)); // images in [-1, 1]: a zero point
    auto seed = random_network<seed32>(23);
    auto calibration = random_images<shape<1, 32, 32>>(32, 24);
    for (auto& v : calibration.values())
        v = (v + 1.f) / 2.f; // [0, 1], as vgg_train's images: zero point 0
    check_int8_export("seed32", *seed, calibration);
}

namespace {

/// `model` without node `name`: what read its output reads its first input.
void remove_node(::onnx::ModelProto& model, const std::string& name)
{
    auto& nodes = *model.mutable_graph()->mutable_node();
    const auto found = std::find_if(nodes.begin(), nodes.end(), [&](const auto& n) { return n.name() == name; });
    REQUIRE(found != nodes.end());
    const std::string input = found->input(0), output = found->output(0);
    nodes.erase(found);
    for (auto& node : nodes)
        for (auto& value : *node.mutable_input())
            if (value == output)
                value = input;
}

::onnx::TensorProto& initializer_of(::onnx::ModelProto& model, const std::string& name)
{
    for (auto& t : *model.mutable_graph()->mutable_initializer())
        if (t.name() == name)
            return t;
    throw std::logic_error("no initializer " + name);
}

/// Reads `model` back as an int8 network and compares it with `quantised`: the same codes, scales
/// and input quantisation; biases within half a step of their int32 codes; logits within rounding.
template <class Net>
void check_read_back(const ::onnx::ModelProto& model, int8::quantized_network<Net>& quantised)
{
    auto read = int8::load_onnx<Net>(model, "qdq.onnx");
    REQUIRE(read.parts().size() == quantised.parts().size());
    for (std::size_t k = 0; k < read.parts().size(); ++k) {
        const auto &got = read.parts()[k], &want = quantised.parts()[k];
        CAPTURE(want.layer.name);
        CHECK(got.layer.parameter == want.layer.parameter);
        CHECK(got.weights.values == want.weights.values);
        CHECK(got.weights.scales == want.weights.scales);
        CHECK(got.input.scale == want.input.scale);
        CHECK(got.input.zero_point == want.input.zero_point);
        for (std::size_t o = 0; o < want.layer.out; ++o)
            CHECK(std::abs(got.layer.bias[o] - want.layer.bias[o]) <=
                  0.5001f * want.input.scale * want.weights.scales[o]);
    }
    const auto x = random_images<typename Net::input_shape>(4, 31);
    const auto& expected = quantised.forward(x);
    const std::vector<float> want(expected.values().begin(), expected.values().end());
    const auto& got = read.forward(x);
    CHECK(relative_difference(std::vector<float>(got.values().begin(), got.values().end()), want) < 0.01f);
}

} // namespace

TEST_CASE("an int8 network in QDQ form reads back: vgg's export, s8 activations, ReLUs left to the quantiser")
{
    auto net = random_network<rgb_bn>(27);
    int8::quantized_network<rgb_bn> quantised(*net, random_images<shape<3, 16, 16>>(16, 28));
    const auto model = int8::to_onnx(quantised);
    SUBCASE("as exported, from a file too")
    {
        check_read_back(model, quantised);
        const auto path = scratch_file("read-back-int8.onnx");
        int8::save_onnx(quantised, path);
        CHECK(int8::load_onnx<rgb_bn>(path).parts().size() == 5);
    }
    SUBCASE("activations as INT8, their zero points 128 lower")
    {
        auto changed = model;
        for (auto& t : *changed.mutable_graph()->mutable_initializer())
            if (t.name().ends_with("input_zero_point")) {
                REQUIRE(t.data_type() == ::onnx::TensorProto::UINT8);
                t.set_data_type(::onnx::TensorProto::INT8);
                t.mutable_raw_data()->at(0) = char(std::uint8_t(t.raw_data().at(0)) - 128);
            }
        check_read_back(changed, quantised);
    }
    SUBCASE("no Relu nodes: the quantisation to UINT8 from zero after each clamps as one")
    {
        auto changed = model;
        for (const auto& name : {"/0.0/Relu", "/1.0/Relu", "/1.2/Relu", "/3/Relu"})
            remove_node(changed, name);
        check_read_back(changed, quantised);
    }
}

TEST_CASE("a QDQ model vgg's int8 layers cannot run is refused with a sentence naming the node and the layer")
{
    auto net = random_network<rgb_bn>(29);
    int8::quantized_network<rgb_bn> quantised(*net, random_images<shape<3, 16, 16>>(8, 30));
    const auto model = int8::to_onnx(quantised);
    const std::string p = "qdq.onnx: ";
    const auto error = [&](const ::onnx::ModelProto& changed) {
        return error_of([&] { int8::load_onnx<rgb_bn>(changed, "qdq.onnx"); });
    };

    auto changed = model;
    initializer_of(changed, "1.0.weight").mutable_raw_data()->at(3) = char(65);
    CHECK(error(changed) == p + "initializer \"1.0.weight\" holds 65 at index 3: vgg's int8 weights lie in [-64, 64] "
                                "(AVX2 sums pairs of u8 x s8 products in int16); ONNX Runtime's quantiser writes such "
                                "weights with reduce_range");
    changed = model;
    initializer_of(changed, "1.0.weight_zero_point").mutable_raw_data()->at(2) = char(1);
    CHECK(error(changed) == p + "node \"/1.0/Conv\" (Conv) dequantises its weight with zero point 1 and scale " +
                                std::to_string(quantised.parts()[1].weights.scales[2]) +
                                "; vgg's int8 weights are symmetric: zero point 0, a scale above 0");
    changed = model;
    node_of(changed, "Conv").set_input(1, "0.0.weight");
    CHECK(error(changed) == p + "node \"/0.0/Conv\" (Conv) takes an fp32 weight, or one not dequantised from INT8; "
                                "vgg's int8 layers take s8 weights");
    changed = model;
    remove_node(changed, "/6/input/QuantizeLinear");
    remove_node(changed, "/6/input/DequantizeLinear");
    CHECK(error(changed) == p + "node \"/6/Gemm\" (Gemm) takes its input unquantised; vgg's int8 layers need a "
                                "QuantizeLinear and DequantizeLinear before each Conv and Gemm");
    changed = model;
    remove_node(changed, "/6/input/DequantizeLinear");
    CHECK(error(changed) == p + "node \"/6/Gemm\" (Gemm) reads a QuantizeLinear's codes; vgg reads QDQ models");
    changed = model;
    initializer_of(changed, "3.input_zero_point").mutable_raw_data()->at(0) = char(3);
    CHECK(error(changed) == p + "node \"/3/Gemm\" (Gemm) takes its input with zero point 3 (as UINT8); vgg's int8 "
                                "layers after the first take u8 from zero, what a ReLU gives");
    remove_node(changed, "/1.2/Relu"); // now nothing clamps at zero after that convolution
    CHECK(error(changed) == p + "node \"/3/Flatten\" (Flatten) is where the network has layer "
                                "1, convolution 1, which needs a Relu (or a quantisation to UINT8 from zero after it)");
    CHECK(error(io::to_onnx(*net)) == p + "is an fp32 model (it has no QuantizeLinear or DequantizeLinear): load it "
                                          "into the fp32 network (io::load_onnx) and quantise that");
    using wider = Sequential<shape<3, 16, 16>, VGGBlockBN<1, 3, 16>, VGGBlock<2, 16, 64>, Flatten, Linear<1024, 32>,
                             ReLU, Dropout<50>, Linear<32, 10>>;
    CHECK(error_of([&] { int8::load_onnx<wider>(model, "qdq.onnx"); }) ==
          p + "node \"/1.0/Conv\" (Conv) has a weight of shape [32, 16, 3, 3], but layer 1, convolution 0 needs [64, "
              "16, 3, 3]");
}

TEST_CASE("an int8 network whose bias int32 cannot hold at its scale is not exported, and no file is written")
{
    using tiny = Sequential<shape<1, 4, 4>, VGGBlock<1, 1, 2>, Flatten, Linear<8, 2>>;
    auto net = random_network<tiny>(25);
    net->visit_parameters([](const parameter_view& p) {
        for (auto& v : p.value)
            v = p.name.ends_with("bias") ? 1e4f : 1e-6f;
    });
    int8::quantized_network<tiny> quantised(*net, random_images<shape<1, 4, 4>>(4, 26));
    const auto path = scratch_file("huge-bias-int8.onnx");
    const std::string message = error_of([&] { int8::save_onnx(quantised, path); });
    CHECK(message.starts_with(path.string() +
                              ": not written: to_onnx: the bias of layer 0, convolution 0 at output 0 is "
                              "too large for int32"));
    CHECK(!fs::exists(path));
}

TEST_CASE("files from torch.onnx.export import and give PyTorch's logits")
{
    const auto dir = torch_reference();
    auto check = [&]<class Net>(const std::string& name, bool folded) {
        CAPTURE(name);
        auto net = std::make_unique<Net>();
        const auto report = io::load_onnx(*net, dir / (name + ".onnx"));
        CHECK(report.producer.starts_with("pytorch"));
        CHECK(report.batch_norm_folded == folded);
        const auto reference = io::read_safetensors(dir / (name + ".safetensors"));
        tensor<typename Net::input_shape> x(2);
        const auto& images = reference.tensors.at("images").values;
        REQUIRE(images.size() == x.size());
        std::copy(images.begin(), images.end(), x.data());
        const float difference = relative_difference(logits_of(*net, x), reference.tensors.at("logits").values);
        MESSAGE(name << ": vgg's logits against PyTorch's, largest difference over largest logit " << difference);
        CHECK(difference < 1e-5f);
    };
    check.operator()<seed32>("seed32-opset11", false);
    check.operator()<seed32>("seed32-opset17", false);
    check.operator()<seed32>("seed32-opset9-view", false);
    check.operator()<torchvision_small<batch_norm<vgg11_arch>, 224>>("vgg11_bn-opset13-fused", true);
    check.operator()<torchvision_small<batch_norm<vgg11_arch>, 224>>("vgg11_bn-opset17-nodes", false);
    check.operator()<torchvision_small<vgg11_arch, 224>>("vgg11-opset11", false);
}

TEST_CASE("initializers in typed fields (float_data) load as raw_data does, and a Dropout node is passed by")
{
    using net_t =
        Sequential<shape<3, 8, 8>, VGGBlockBN<1, 3, 4>, Flatten, Linear<64, 16>, ReLU, Dropout<50>, Linear<16, 5>>;
    auto net = random_network<net_t>(12);
    auto model = io::to_onnx(*net);
    for (auto& t : *model.mutable_graph()->mutable_initializer()) {
        if (t.data_type() != ::onnx::TensorProto::FLOAT)
            continue;
        std::vector<float> values(t.raw_data().size() / sizeof(float));
        std::memcpy(values.data(), t.raw_data().data(), t.raw_data().size());
        t.clear_raw_data();
        for (const float v : values)
            t.add_float_data(v);
    }
    // A Dropout between the second ReLU and the last Gemm, as torch.onnx.export writes in training mode.
    auto& graph = *model.mutable_graph();
    auto& last = *graph.mutable_node(graph.node_size() - 1);
    auto* dropout = graph.add_node();
    dropout->set_op_type("Dropout");
    dropout->set_name("/dropout");
    dropout->add_input(last.input(0));
    dropout->add_output("dropped");
    last.set_input(0, "dropped");
    std::swap(*graph.mutable_node(graph.node_size() - 1), *graph.mutable_node(graph.node_size() - 2));
    std::string bytes;
    REQUIRE(model.SerializeToString(&bytes));
    auto imported = std::make_unique<net_t>();
    io::load_onnx(*imported, bytes, "typed.onnx");
    CHECK(values_of(*imported) == values_of(*net));
}

TEST_CASE("a file that disagrees with the network is refused with a sentence naming the node and the layer")
{
    using small_block = Sequential<shape<3, 8, 8>, VGGBlock<2, 3, 8>, Flatten, Linear<128, 5>>;
    using wider_block = Sequential<shape<3, 8, 8>, VGGBlock<2, 3, 16>, Flatten, Linear<256, 5>>;
    using other_size = Sequential<shape<3, 16, 16>, VGGBlock<2, 3, 8>, Flatten, Linear<512, 5>>;
    using with_batch_norm = Sequential<shape<3, 8, 8>, VGGBlockBN<2, 3, 8>, Flatten, Linear<128, 5>>;
    auto net = random_network<small_block>(1);
    const auto model = exported(*net);
    const fs::path path = "model.onnx";
    const std::string p = "model.onnx: ";

    CHECK(load_error<wider_block>(model, path) ==
          p + "node \"/0.0/Conv\" (Conv) has 8 output channels, but layer 0 (VGGBlock<2, 3, 16>) convolution 0 has 16");
    CHECK(load_error<other_size>(model, path) ==
          p + "graph input \"input\" has shape [-1, 3, 8, 8], but the network takes [batch, 3, 16, 16]");
    auto with_statistics = random_network<with_batch_norm>(1);
    CHECK(load_error<small_block>(exported(*with_statistics), path) ==
          p + "node \"/0.1/BatchNormalization\" (BatchNormalization) is where the network has layer 0 (VGGBlock<2, 3, "
              "8>) "
              "ReLU 0, which needs a Relu");

    auto changed = model;
    node_of(changed, "Relu").set_op_type("Sigmoid");
    CHECK(load_error<small_block>(changed, path)
              .starts_with(p + "node \"/layer0/1/Relu\" (Sigmoid) is an operator vgg does not support"));

    changed = model;
    auto& conv = node_of(changed, "Conv");
    for (auto& a : *conv.mutable_attribute())
        if (a.name() == "strides")
            a.set_ints(0, 2);
    CHECK(load_error<small_block>(changed, path) ==
          p + "node \"/0.0/Conv\" (Conv) has strides [2, 1]; vgg's layers have strides [1, 1]");

    changed = model;
    changed.mutable_opset_import(0)->set_version(99);
    CHECK(load_error<small_block>(changed, path) ==
          p + "uses opset 99 of ONNX's default domain; vgg reads opsets 7 to 21");

    changed = model;
    changed.mutable_graph()->mutable_initializer(0)->set_dims(0, std::int64_t(1) << 41);
    CHECK(load_error<small_block>(changed, path) ==
          p + "initializer \"0.0.weight\" declares dimensions [2199023255552, 3, 3, 3], which no tensor can have");
    changed.mutable_graph()->mutable_initializer(0)->set_dims(0, 1000000);
    CHECK(load_error<small_block>(changed, path) ==
          p + "initializer \"0.0.weight\" declares 27000000 values (dimensions [1000000, 3, 3, 3]) but holds 216");

    changed = model;
    changed.mutable_graph()->mutable_initializer(0)->set_data_location(::onnx::TensorProto::EXTERNAL);
    CHECK(load_error<small_block>(changed, path) ==
          p + "initializer \"0.0.weight\" keeps its data in an external file, which vgg does not read (save the model "
              "with its weights inside)");

    changed = model;
    changed.mutable_graph()->mutable_initializer(0)->set_data_type(::onnx::TensorProto::DOUBLE);
    CHECK(load_error<small_block>(changed, path) ==
          p + "initializer \"0.0.weight\" has data type DOUBLE; vgg reads FLOAT weights, INT64 shapes, and a quantised "
              "model's INT8, UINT8 and INT32 codes");

    changed = model;
    changed.mutable_graph()->mutable_node()->RemoveLast(); // the Gemm
    changed.mutable_graph()->mutable_output(0)->set_name(
        changed.graph().node(changed.graph().node_size() - 1).output(0));
    CHECK(load_error<small_block>(changed, path) ==
          p + "ends before layer 2 (Linear<128, 5>), which needs a Gemm or a MatMul");

    std::string bytes;
    REQUIRE(model.SerializeToString(&bytes));
    auto fresh = random_network<small_block>(2);
    CHECK(error_of([&] { io::load_onnx(*fresh, std::string_view(bytes).substr(0, bytes.size() / 2), path); }) ==
          p + "is not an ONNX model: it does not parse as one (truncated, or a file of another kind)");
    const auto weights = scratch_file("weights.safetensors");
    io::save_weights(*fresh, weights);
    CHECK(error_of([&] { io::load_onnx(*fresh, weights); }).starts_with(weights.string() + ": is not an ONNX model"));
}
