#pragma once
// 3x3, stride-1, pad-1 convolutions: each pass is planned once (conv/plan.hpp) and run by the
// back end its plan names (conv/*_backend.hpp), with its epilogue given as data
// (conv/epilogue.hpp).
#include <algorithm>
#include <cstddef>
#include <optional>
#include <vector>

#include <Eigen/Core>

#include "vgg/core/tensor.hpp"
#include "vgg/detail/parallel.hpp"
#include "vgg/kernels/conv/amx_backend.hpp"
#include "vgg/kernels/conv/dims.hpp"
#include "vgg/kernels/conv/direct_backend.hpp"
#include "vgg/kernels/conv/epilogue.hpp"
#include "vgg/kernels/conv/gemm_backend.hpp"
#include "vgg/kernels/conv/plan.hpp"
#include "vgg/kernels/conv/winograd_backend.hpp"
#include "vgg/kernels/detail/thread_buffers.hpp"
#include "vgg/kernels/detail/winograd_kernel_cache.hpp"

namespace vgg::kernels {

namespace detail {

/// A direct or im2col + GEMM forward pass: threads take whole images, each with its own column
/// buffer (a whole batch of columns would be hundreds of MB) and scratch, or, for small batches,
/// groups of output channels (the plan's pieces). A pooled output is computed into the thread's
/// image buffer and pooled group by group (the direct kernel pools in registers).
inline void forward_by_images(const conv3x3_dims& d, const conv3x3_forward_plan& plan, std::size_t batch,
                              const float* x, const float* weight, const float* bias, const conv_output& out)
{
    const std::size_t pieces = plan.pieces_per_image;
    const bool direct = plan.algorithm == conv3x3_algorithm::direct;
    vgg::detail::parallel_ranges(
        batch * pieces, d.forward_operations() / pieces, [&](std::size_t, std::size_t, vgg::detail::range work) {
            thread_buffers& buffers = this_thread_buffers();
            float* scratch = direct ? vgg::detail::reserve(buffers.columns, direct_scratch_size(d, out))
                             : plan.algorithm == conv3x3_algorithm::im2col_gemm
                                 ? vgg::detail::reserve(buffers.columns, d.columns_size())
                                 : nullptr;
            for (std::size_t item = work.begin; item < work.end; ++item) {
                const std::size_t n = item / pieces;
                const auto channels = vgg::detail::partition(d.out_channels, pieces, item % pieces);
                const conv_output image = out.image(n, d);
                const bool pooled_in_registers = direct && image.pools();
                float* result = image.pools() && !pooled_in_registers
                                    ? vgg::detail::reserve(buffers.image, d.out_size())
                                    : image.planes;
                if (direct)
                    direct_forward_channels(d, x, n, weight, bias, channels, image, scratch, result);
                else
                    gemm_forward_channels(d, plan.algorithm, x, n, weight, bias, channels, scratch, result);
                if (!pooled_in_registers)
                    finish_channels(d, image, result, channels);
            }
        });
}

} // namespace detail

/// The plan of a forward pass with transformed kernels kept in `kept`, if any. Where kept kernels
/// would let Winograd run, `kept` first takes a copy of changed weights; then the pass runs as
/// without it, and only passes with the weights it has copied take the kept kernels' rule (after
/// every training step, the evaluation pass costs what it did without, plus the comparison and
/// the copy).
inline conv3x3_forward_plan plan_conv3x3_forward(const conv3x3_dims& d, std::size_t batch, const float* weight,
                                                 winograd_kernel_cache* kept)
{
    const bool kernels_kept = kept && winograd_tile(d, batch, true) != 0 && kept->keep_weights(d, weight);
    return plan_conv3x3_forward(d, batch, kernels_kept);
}

/// The forward pass of a batch: conv(x) + bias into `out` (stored, through ReLU, or ReLU and
/// 2x2 max-pool with arg-max). A Winograd pass takes its transformed kernels from `kept` when
/// there is one.
inline void conv3x3_forward(const conv3x3_dims& d, std::size_t batch, const float* x, const float* weight,
                            const float* bias, const conv_output& out, winograd_kernel_cache* kept = nullptr)
{
    require_precision(d.compute);
    const conv3x3_forward_plan plan = plan_conv3x3_forward(d, batch, weight, kept);
    switch (plan.algorithm) {
    case conv3x3_algorithm::amx: return amx_forward(d, plan, batch, x, weight, bias, out);
    case conv3x3_algorithm::winograd_f2:
    case conv3x3_algorithm::winograd_f4: return winograd_forward(d, plan, batch, x, weight, bias, kept, out);
    default: return detail::forward_by_images(d, plan, batch, x, weight, bias, out);
    }
}

namespace detail {

/// dweight and dbias (overwritten) = the sums of per-thread accumulators: each thread runs
/// accumulate(images, buffers, accumulators) on its share of the batch, with weight size +
/// out_channels zeroed floats of its own (the weight gradient, then the bias gradient), and the
/// sums are taken in thread order, so a given thread count is reproducible. The threads share the
/// weight gradient's summing (VGG-16's 512-channel layers: 9.4 MB a thread).
template <class Accumulate>
void sum_gradients_over_threads(const conv3x3_dims& d, std::size_t batch, std::size_t work_per_image, float* dweight,
                                float* dbias, Accumulate&& accumulate)
{
    const std::size_t weight_size = d.weight_size(), size = weight_size + d.out_channels;
    std::vector<const float*> partial(static_cast<std::size_t>(vgg::max_threads()));
    std::size_t used_threads = 1;
    vgg::detail::parallel_ranges(batch, work_per_image,
                                 [&](std::size_t thread, std::size_t threads, vgg::detail::range images) {
                                     if (thread == 0)
                                         used_threads = threads;
                                     thread_buffers& buffers = this_thread_buffers();
                                     buffers.accumulators.assign(size, 0.f);
                                     partial[thread] = buffers.accumulators.data();
                                     accumulate(images, buffers, buffers.accumulators.data());
                                 });
    // Elements [begin, end) of the sums go to target[0, end - begin).
    const auto sum_partials = [&](std::size_t begin, std::size_t end, float* target) {
        std::copy(partial[0] + begin, partial[0] + end, target);
        for (std::size_t t = 1; t < used_threads; ++t)
            for (std::size_t i = begin; i < end; ++i)
                target[i - begin] += partial[t][i];
    };
    vgg::detail::parallel_ranges(weight_size, used_threads, [&](std::size_t, std::size_t, vgg::detail::range part) {
        sum_partials(part.begin, part.end, dweight + part.begin);
    });
    sum_partials(weight_size, size, dbias);
}

/// The input gradient alone, for a frozen layer: dx = conv3x3(g) with the adjoint kernels, by the
/// plan's forward pass, where g is the batch's output gradient (gathered into one batch when
/// built per image).
inline void input_gradient_alone(const conv3x3_dims& d, std::size_t batch, const float* weight,
                                 const conv_output_gradient& gradient, float* dx)
{
    thread_buffers& caller = this_thread_buffers();
    float* adjoint = vgg::detail::reserve(caller.adjoint, 9 * d.in_channels * d.out_channels);
    adjoint_kernels(weight, d.out_channels, d.in_channels, adjoint);
    float* gathered = vgg::detail::reserve(caller.output_gradients, batch * d.out_size());
    vgg::detail::parallel_ranges(batch, d.out_size(), [&](std::size_t, std::size_t, vgg::detail::range images) {
        for (std::size_t n = images.begin; n < images.end; ++n) {
            const float* g = gradient.image(n, d, this_thread_buffers().image);
            std::copy(g, g + d.out_size(), gathered + n * d.out_size());
        }
    });
    const aligned_vector<float> no_bias(d.in_channels, 0.f);
    conv3x3_forward(with_fastest_products(d.adjoint()), batch, gathered, adjoint, no_bias.data(),
                    conv_output::stored(dx));
}

/// What every thread of a backward pass reads: the plan, the inputs and the kernels made for the
/// input gradient once for all threads.
struct backward_pass {
    const conv3x3_dims& d;
    const conv3x3_backward_plan& plan;
    const float* x;
    const float* weight;
    const conv_output_gradient& gradient;
    float* dx;
    const float* adjoint = nullptr;               ///< bf16: adjoint_kernels; Winograd: their transforms
    const amx_adjoint_convolution* amx = nullptr; ///< the input gradient on AMX
};

/// Image n's steps of a backward pass from its output gradient g: the weight and bias gradients
/// into acc (unless by Winograd, per group), the input gradient into dx (unless by Winograd).
inline void backward_image(const backward_pass& pass, std::size_t n, const float* g, thread_buffers& buffers,
                           float* columns, float* acc)
{
    const conv3x3_dims& d = pass.d;
    float* dx_n = pass.dx ? pass.dx + n * d.in_size() : nullptr;
    switch (pass.plan.weight_gradient) {
    case conv3x3_algorithm::amx:
        return amx_backward_image(d, pass.x + n * d.in_size(), g, pass.amx, dx_n, buffers, acc + d.weight_size());
    case conv3x3_algorithm::direct: direct_accumulate_weight_gradient(d, pass.x, n, g, columns, acc); break;
    case conv3x3_algorithm::im2col_gemm:
    case conv3x3_algorithm::bf16_gemm:
        gemm_accumulate_weight_gradient(d, pass.plan.weight_gradient, pass.x, n, g, columns, acc);
        break;
    default: break;
    }
    if (!pass.plan.weight_gradient_by_winograd()) {
        Eigen::Map<Eigen::VectorXf> db(acc + d.weight_size(), static_cast<Eigen::Index>(d.out_channels));
        db += view(g, d.out_channels, d.pixels()).rowwise().sum();
    }
    switch (pass.plan.input_gradient) {
    case conv3x3_algorithm::amx: pass.amx->run_from(g, buffers, dx_n); break;
    case conv3x3_algorithm::im2col_gemm: // the columns are no longer needed: they take the column gradient
    case conv3x3_algorithm::bf16_gemm:
        gemm_input_gradient(d, pass.plan.input_gradient, pass.weight, pass.adjoint, g, columns, dx_n);
        break;
    default: break;
    }
}

/// One thread's share `images` of a backward pass, in groups of images: each image's steps, then
/// the group's Winograd passes, which read the group's output gradients together (one image's
/// where it is, in dy or the image buffer, unchanged until the next image; more copied together).
inline void backward_images(const backward_pass& pass, vgg::detail::range images, thread_buffers& buffers, float* acc)
{
    const conv3x3_dims& d = pass.d;
    const conv3x3_backward_plan& plan = pass.plan;
    const std::size_t weight_tile = winograd_tile_of(plan.weight_gradient),
                      input_tile = winograd_tile_of(plan.input_gradient);
    float* columns = plan.needs_columns() ? vgg::detail::reserve(buffers.columns, d.columns_size()) : nullptr;
    const amx_weight_gradient_layout amx_layout{d.in_channels, d.out_channels, d.height, d.width};
    if (weight_tile)
        reserve_winograd_weight_sums(d, weight_tile, buffers);
    if (plan.weight_gradient == conv3x3_algorithm::amx)
        buffers.sums.assign(amx_layout.sums_size(), 0.f);
    for (std::size_t n0 = images.begin; n0 < images.end; n0 += plan.group) {
        const std::size_t n1 = std::min(n0 + plan.group, images.end);
        const bool keeps = (weight_tile || input_tile) && n1 - n0 > 1;
        float* kept = keeps ? vgg::detail::reserve(buffers.kept_gradients, (n1 - n0) * d.out_size()) : nullptr;
        const float* group_gradients = kept;
        for (std::size_t n = n0; n < n1; ++n) {
            const float* g = pass.gradient.image(n, d, buffers.image);
            if (keeps)
                std::copy(g, g + d.out_size(), kept + (n - n0) * d.out_size());
            else
                group_gradients = g;
            backward_image(pass, n, g, buffers, columns, acc);
        }
        if (weight_tile)
            winograd_weight_gradient_of_group(
                d, weight_tile, n1 - n0, pass.x + n0 * d.in_size(), group_gradients, buffers,
                n0 == images.begin ? gemm_update::overwrite : gemm_update::accumulate, acc + d.weight_size());
        if (input_tile)
            winograd_input_gradient(d, input_tile, n1 - n0, group_gradients, pass.adjoint, buffers.winograd,
                                    pass.dx + n0 * d.in_size());
    }
    if (weight_tile && images.size() > 0) // a thread without images has no sums
        finish_winograd_weight_gradient(d, weight_tile, buffers, acc);
    if (plan.weight_gradient == conv3x3_algorithm::amx)
        add_weight_gradient_sums(amx_layout, buffers.sums.data(), acc);
}

} // namespace detail

/// The backward pass of a batch from `gradient`, the gradient of what conv3x3_forward wrote.
/// dweight and dbias are overwritten with the sums over the batch; dx (if not null) with the
/// input gradient. With dweight null (a frozen layer) only dx is computed. Each thread sums its
/// images into its own accumulators, reduced in thread order, so a given thread count is
/// reproducible.
inline void conv3x3_backward(const conv3x3_dims& d, std::size_t batch, const float* x, const float* weight,
                             const conv_output_gradient& gradient, float* dweight, float* dbias, float* dx)
{
    require_precision(d.compute);
    const conv3x3_backward_plan plan =
        plan_conv3x3_backward(d, batch, dweight != nullptr, dx != nullptr, gradient.pools());
    if (plan.weight_gradient == conv3x3_algorithm::none)
        return plan.input_gradient == conv3x3_algorithm::none
                   ? void()
                   : detail::input_gradient_alone(d, batch, weight, gradient, dx);
    if (plan.sums_pooling_windows)
        return detail::sum_gradients_over_threads(
            d, batch, 2 * d.forward_operations(), dweight, dbias,
            [&](vgg::detail::range images, thread_buffers& buffers, float* acc) {
                float* split = vgg::detail::reserve(buffers.columns, detail::split_columns_size(d.height, d.width));
                direct_accumulate_pooled_gradients(d, x, gradient, images, split, acc, acc + d.weight_size());
            });
    detail::backward_pass pass{d, plan, x, weight, gradient, dx};
    if (plan.input_gradient_by_winograd()) {
        pass.adjoint = winograd_adjoint_kernels(d, winograd_tile_of(plan.input_gradient), weight);
    } else if (plan.input_gradient == conv3x3_algorithm::bf16_gemm || plan.input_gradient == conv3x3_algorithm::amx) {
        float* adjoint = vgg::detail::reserve(this_thread_buffers().kernels, 9 * d.in_channels * d.out_channels);
        adjoint_kernels(weight, d.out_channels, d.in_channels, adjoint);
        pass.adjoint = adjoint;
    }
    std::optional<amx_adjoint_convolution> amx;
    if (plan.input_gradient == conv3x3_algorithm::amx)
        pass.amx = &amx.emplace(d, pass.adjoint);
    detail::sum_gradients_over_threads(d, batch, 3 * d.forward_operations(), dweight, dbias,
                                       [&](vgg::detail::range images, thread_buffers& buffers, float* acc) {
                                           detail::backward_images(pass, images, buffers, acc);
                                       });
}

} // namespace vgg::kernels
