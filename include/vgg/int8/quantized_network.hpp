#pragma once
// A trained fp32 network quantised for int8 inference (post-training static quantisation): weights
// s8 per output channel, activations u8 per tensor with ranges from a calibration set, int32 sums,
// bias, ReLU and 2x2 max-pool fused into each layer's requantisation.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "vgg/core/tensor.hpp"
#include "vgg/detail/exclusive_use.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/int8/calibration.hpp"
#include "vgg/int8/layer_ops.hpp"
#include "vgg/int8/network_file.hpp"
#include "vgg/int8/quantized_parts.hpp"
#include "vgg/int8/rules.hpp"
#include "vgg/kernels/int8/conv3x3_int8.hpp"
#include "vgg/kernels/int8/image_rows.hpp"
#include "vgg/kernels/int8/linear_int8.hpp"
#include "vgg/layers/sequential.hpp"

namespace vgg::int8 {

struct quantize_options {
    calibration_method method = calibration_method::mse;
    double percentile = 99.99; ///< for calibration_method::percentile
    std::size_t batch = 16;    ///< images per fp32 pass of calibration
    kernels::int8_kernel kernel = kernels::best_int8_kernel();
};

/// A layer of the quantised network, for reports.
struct quantized_layer {
    std::string name;
    kernels::int8::input_quantisation input; ///< how its u8 input is quantised
    std::size_t operations = 0;              ///< multiplies and adds of one image, times two
};

namespace detail {

/// One int8 layer, ready to run.
struct int8_op {
    layer_op::kind type;
    kernels::int8::packed_weights weights;
    kernels::int8::requantisation requantisation;
    /// Its u8 input, one image: a convolution's with a border of 1; a fully connected layer's the
    /// previous layer's output as it is stored (channels-last planes after a convolution).
    kernels::int8::planes in;
    kernels::int8::planes out; ///< a convolution's output: the next layer's input
    std::size_t out_features = 0;
    bool pool = false;
};

/// `part` ready to run after `before` (none for the first layer, which reads the image by rows),
/// writing at `output_scale` (1 for the last layer's fp32 output).
inline int8_op make_int8_op(const int8_layer_parts& part, const layer_op* before, float output_scale)
{
    using kernels::int8::padded_channels;
    const layer_op& op = part.layer;
    const auto& q = part.weights;
    int8_op result{op.type, {}, {}, {}, {}, op.out, op.pool};
    // Inputs stored as codes q with a zero point z stand for scale * (q - z): the sum of w * z is
    // taken off through the bias (only the image has a zero point).
    aligned_vector<float> bias = op.bias;
    const std::size_t per_output = q.values.size() / op.out;
    for (std::size_t o = 0; part.input.zero_point != 0 && o < op.out; ++o) {
        long weights = 0;
        for (std::size_t k = 0; k < per_output; ++k)
            weights += q.values[o * per_output + k];
        bias[o] -= static_cast<float>(double(part.input.scale) * q.scales[o] * part.input.zero_point * double(weights));
    }
    result.requantisation = kernels::int8::requantisation::of(part.input.scale, q.scales, bias.data(), output_scale);
    const auto same = [](std::size_t s) { return s; };
    if (!before) {
        result.in = kernels::int8::image_planes(op.in, op.height, op.width);
        result.weights = kernels::int8::pack_row_tap_weights(q, op.out, op.in);
        return result;
    }
    if (op.type == layer_op::kind::conv) {
        result.in = {op.height, op.width, padded_channels(op.in), 1};
        result.weights = kernels::int8::pack_weights(q, op.out, op.in, 9, result.in.channels, same);
        return result;
    }
    // After a convolution the input is its pooled planes channels-last, where Flatten's order
    // (the weights' columns) is channels-first: the packing reorders the columns.
    const bool after_conv = before->type == layer_op::kind::conv;
    const std::size_t height = after_conv ? before->out_height() : 1, width = after_conv ? before->out_width() : 1;
    const std::size_t channels = op.in / (height * width);
    result.in = {height, width, padded_channels(channels), 0};
    result.weights = kernels::int8::pack_weights(q, op.out, op.in, 1, result.in.image_size(), [&](std::size_t s) {
        const std::size_t pixel = s / result.in.channels, c = s % result.in.channels;
        return c < channels ? c * height * width + pixel : op.in;
    });
    return result;
}

} // namespace detail

/// Net quantised for int8 inference from a calibration set: every convolution and fully connected
/// layer is int8. The image is quantised with a zero point (it may be negative) and read by the
/// first convolution one 3x3 row at a time; the last layer's output is dequantised to fp32
/// logits. Only inference: forward(x) returns what Net's evaluation would, within quantisation.
template <class Net>
class quantized_network {
public:
    using input_shape = typename Net::input_shape;
    using output_shape = typename Net::output_shape;

    /// Calibrates on `calibration` (a few hundred images of the data the network will see) and
    /// quantises. Throws std::invalid_argument for an empty calibration set or a NaN or infinite
    /// weight.
    quantized_network(const Net& net, const tensor<input_shape>& calibration, quantize_options options = {})
        : quantized_network(quantise(net, calibration, options), options.kernel)
    {}

    /// Reads a network save() wrote. A file of another network, or a damaged one, is an
    /// io::file_error naming the tensor.
    explicit quantized_network(const std::filesystem::path& path,
                               kernels::int8_kernel kernel = kernels::best_int8_kernel())
        : quantized_network(io::read_safetensors(path), path, kernel)
    {}

    /// The network save() wrote, from the file's content (read from `path`, which errors name).
    quantized_network(io::safetensors_content content, const std::filesystem::path& path,
                      kernels::int8_kernel kernel = kernels::best_int8_kernel())
        : quantized_network(read_quantized_parts(layer_structure<Net>(), std::move(content), path), kernel)
    {}

    /// The network of layers made elsewhere (an ONNX model's, int8::load_onnx): `parts` must have
    /// Net's layers (check_parts), else std::invalid_argument.
    explicit quantized_network(std::vector<int8_layer_parts> parts,
                               kernels::int8_kernel kernel = kernels::best_int8_kernel())
        : kernel_(kernel), parts_(std::move(parts))
    {
        // Here, not on the class: a failed rule is then the only error, under clang too.
        static_assert(rules::int8_layers_supported_v<Net>,
                      "int8 quantisation takes networks of VGGBlock, VGGBlockBN, Linear, ReLU, Flatten, Dropout and "
                      "AdaptiveAvgPool2d layers (an AdaptiveAvgPool2d only where it keeps the size).");
        static_assert(rules::int8_block_first_linear_last_v<Net>,
                      "int8 quantisation needs a network that starts with a VGG block and ends with a Linear layer.");
        static_assert(rules::int8_hidden_linears_have_relu_v<Net>,
                      "int8 quantisation needs a ReLU after every Linear layer but the last: u8 activations cannot be "
                      "negative.");
        check_parts(layer_structure<Net>(), parts_);
        for (std::size_t k = 0; k < parts_.size(); ++k) {
            const float next = k + 1 < parts_.size() ? parts_[k + 1].input.scale : 1.f;
            const layer_op& op = parts_[k].layer;
            ops_.push_back(detail::make_int8_op(parts_[k], k == 0 ? nullptr : &parts_[k - 1].layer, next));
            layers_.push_back({op.name, parts_[k].input, op.operations()});
        }
        for (std::size_t k = 0; k + 1 < ops_.size(); ++k)
            ops_[k].out = ops_[k + 1].in;
        activations_.resize(ops_.size());
    }

    /// Writes the network to `path` (safetensors, see network_file.hpp), atomically.
    void save(const std::filesystem::path& path) const { write_quantized_parts(parts_, path); }

    /// Logits of x. around(index, run) runs layer `index` (of layers()) by calling run(), for
    /// timing; the default just runs it.
    template <class AroundLayer = vgg::detail::run_directly>
    const tensor<output_shape>& forward(const tensor<input_shape>& x, AroundLayer around = {})
    {
        const vgg::detail::exclusive_use::hold held(in_use_, "int8::quantized_network::forward");
        const std::size_t batch = x.batch();
        y_.resize(batch);
        // Resized, never refilled: the borders stay zero, and every pass writes the rest (the
        // image's border too: its zero point).
        for (std::size_t k = 0; k < ops_.size(); ++k)
            activations_[k].resize(batch * ops_[k].in.image_size() + (k == 0 ? kernels::int8::image_slack : 0));
        around(std::size_t{0}, [&] { first_layer(x); });
        for (std::size_t k = 1; k < ops_.size(); ++k)
            around(k, [&] { run(k, batch); });
        // u8 has no NaN: an image with a NaN value gets NaN logits, as in fp32.
        for (std::size_t n = 0; n < batch; ++n)
            if (not_a_number_[n])
                std::fill(y_.sample(n), y_.sample(n) + output_shape::size, std::numeric_limits<float>::quiet_NaN());
        return y_;
    }

    const std::vector<quantized_layer>& layers() const { return layers_; }
    /// Its layers as quantisation made them: s8 weights and scales, fp32 biases, input quantisation.
    const std::vector<int8_layer_parts>& parts() const { return parts_; }
    kernels::int8_kernel kernel() const { return kernel_; }

private:
    static std::vector<int8_layer_parts> quantise(const Net& net, const tensor<input_shape>& calibration,
                                                  const quantize_options& options)
    {
        if (calibration.batch() == 0)
            throw std::invalid_argument("int8 quantisation needs calibration images: the calibration set is empty");
        if (options.batch == 0)
            throw std::invalid_argument("int8 quantisation: quantize_options::batch (images per calibration pass) "
                                        "must be at least 1");
        auto ops = collect_layer_ops(net);
        const auto finite = [](const aligned_vector<float>& values) {
            return std::all_of(values.begin(), values.end(), [](float v) { return std::isfinite(v); });
        };
        for (const layer_op& op : ops)
            if (!finite(op.weight) || !finite(op.bias))
                throw std::invalid_argument("int8 quantisation: " + op.name + " has a NaN or infinite weight or bias");
        const std::vector<float> thresholds = calibrate(ops, calibration, options);
        return quantise_parts(std::move(ops), image_quantisation({calibration.data(), calibration.size()}), thresholds);
    }

    static std::vector<float> calibrate(const std::vector<layer_op>& ops, const tensor<input_shape>& images,
                                        const quantize_options& options)
    {
        std::vector<activation_histogram> histograms(ops.size());
        aligned_vector<float> a, b;
        aligned_vector<std::uint8_t> argmax;
        for (const bool counting : {false, true})
            for (std::size_t n = 0; n < images.batch(); n += options.batch) {
                const std::size_t count = std::min(options.batch, images.batch() - n);
                a.assign(images.sample(n), images.sample(n) + count * input_shape::size);
                for (std::size_t k = 0; k + 1 < ops.size(); ++k) {
                    run_fp32(ops[k], count, a.data(), b, argmax);
                    if (counting)
                        histograms[k + 1].observe(b.data(), b.size());
                    else
                        histograms[k + 1].observe_range(b.data(), b.size());
                    std::swap(a, b);
                }
            }
        std::vector<float> thresholds(ops.size(), 0.f);
        for (std::size_t k = 1; k < ops.size(); ++k)
            thresholds[k] = histograms[k].threshold(options.method, options.percentile);
        return thresholds;
    }

    // The first convolution: the images quantised, then convolved.
    void first_layer(const tensor<input_shape>& x)
    {
        const kernels::int8::planes& image = ops_.front().in;
        not_a_number_.assign(x.batch(), 0);
        vgg::detail::parallel_ranges(
            x.batch(), 2 * input_shape::size, [&](std::size_t, std::size_t, vgg::detail::range images) {
                for (std::size_t n = images.begin; n < images.end; ++n)
                    not_a_number_[n] = !kernels::int8::quantise_image(x.sample(n), parts_.front().input, image,
                                                                      activations_[0].data() + n * image.image_size());
            });
        run(0, x.batch());
    }

    void run(std::size_t k, std::size_t batch)
    {
        const detail::int8_op& op = ops_[k];
        const bool last = k + 1 == ops_.size();
        std::uint8_t* u8 = last ? nullptr : activations_[k + 1].data();
        if (op.type == layer_op::kind::conv) {
            kernels::int8::conv3x3_int8_forward(kernel_, batch, op.in, activations_[k].data(), op.weights,
                                                op.requantisation, {.layout = op.out, .u8 = u8, .pool = op.pool});
            return;
        }
        kernels::int8::linear_int8_forward(kernel_, batch, activations_[k].data(), op.in.image_size(), op.weights,
                                           op.requantisation, op.out_features, u8, last ? y_.data() : nullptr);
    }

    kernels::int8_kernel kernel_;
    std::vector<int8_layer_parts> parts_;
    std::vector<detail::int8_op> ops_;
    std::vector<quantized_layer> layers_;
    std::vector<aligned_vector<std::uint8_t>> activations_; ///< each layer's input
    std::vector<std::uint8_t> not_a_number_;                ///< per image of the last pass: it held a NaN
    tensor<output_shape> y_;
    vgg::detail::exclusive_use in_use_;
};

/// quantized_network<Net>(net, calibration, options).
template <class Net>
quantized_network<Net> quantize(const Net& net, const tensor<typename Net::input_shape>& calibration,
                                quantize_options options = {})
{
    return quantized_network<Net>(net, calibration, options);
}

} // namespace vgg::int8
