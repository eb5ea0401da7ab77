// Every network the programs build and every torchvision model, at its smallest and largest input
// sizes, through a training pass: forward, backward with the input gradient, one SGD step. Every
// value must be finite, and the input gradient must give the loss's directional derivatives
// (central differences) along three directions. The 224-pixel networks run with VGG_SWEEP=full
// (scripts/test.sh --all); VGG_SWEEP=small (the sanitizer build) takes two of the eight torchvision
// models (one plain, one with batch norm: the others add only more of the same convolutions).
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "gradient_check.hpp"
#include "test_support.hpp"
#include <vgg/vgg.hpp>

using namespace vgg;
using vgg::testing::fill_uniform;
using vgg::testing::sweep_size;

namespace {

bool all_finite(std::span<const float> values)
{
    for (float v : values)
        if (!std::isfinite(v))
            return false;
    return true;
}

/// Trains `Net` for one step on a batch of 2 random images and checks what the issue of a
/// compile-time-shaped library promises: if it compiles, it runs, and its numbers are right.
template <class Net>
void train_one_step(const std::string& name)
{
    INFO(name);
    auto net = std::make_unique<Net>();
    rng random(name.size());
    net->initialize(weight_init::xavier_uniform, random);
    constexpr std::size_t batch = 2;
    tensor<typename Net::input_shape> x(batch), dx;
    tensor<typename Net::output_shape> dy(batch);
    fill_uniform(x.values(), random, 0.f, 1.f);
    fill_uniform(dy.values(), random);
    // Training mode with one stream: batch norm uses the batch's statistics and dropout the same
    // masks in every pass, so the loss is one function of the input.
    const run_context context{mode::train, 5};
    const auto loss = [&] {
        const auto& y = net->forward(x, context);
        double sum = 0;
        for (std::size_t i = 0; i < y.size(); ++i)
            sum += double(y.data()[i]) * dy.data()[i];
        return sum;
    };
    const double before = loss();
    REQUIRE(std::isfinite(before));
    net->backward(dy, &dx);
    REQUIRE(dx.batch() == batch);
    CHECK(all_finite(dx.values()));
    bool gradients_finite = true;
    net->visit_parameters([&](const parameter_view& p) { gradients_finite = gradients_finite && all_finite(p.grad); });
    CHECK(gradients_finite);

    // Directional derivatives along dx restricted to: all of it, the first image's first channel,
    // and the one pixel where it is largest. Along v, the derivative is <dx, v> = |v|^2 > 0.
    std::size_t largest = 0;
    for (std::size_t i = 1; i < dx.size(); ++i)
        if (std::abs(dx.data()[i]) > std::abs(dx.data()[largest]))
            largest = i;
    const std::size_t plane = Net::input_shape::size / image_dims<typename Net::input_shape>::channels;
    struct direction {
        const char* name;
        std::size_t begin, end;
    };
    for (const direction d :
         {direction{"all pixels", 0, dx.size()}, direction{"the first channel of the first image", 0, plane},
          direction{"the pixel of the largest gradient", largest, largest + 1}}) {
        CAPTURE(d.name);
        double expected = 0, longest = 0;
        for (std::size_t i = d.begin; i < d.end; ++i) {
            expected += double(dx.data()[i]) * dx.data()[i];
            longest = std::max(longest, std::abs(double(dx.data()[i])));
        }
        REQUIRE(longest > 0);
        // Steps of at most 1e-2, 1e-3, then 1e-4 per pixel (pixels lie in [0, 1]), until one agrees:
        // large steps keep float rounding of the loss far below its change; small ones stay where
        // the loss is nearly linear, which batch norm over a few values (batch 2 at 2x2) needs.
        const std::vector<float> saved(x.values().begin(), x.values().end());
        const auto loss_at = [&](double t) {
            for (std::size_t i = d.begin; i < d.end; ++i)
                x.data()[i] = static_cast<float>(saved[i] + t * dx.data()[i]);
            return loss();
        };
        double numeric = NAN;
        for (const double per_pixel : {1e-2, 1e-3, 1e-4}) {
            const double step = per_pixel / longest;
            numeric = (loss_at(step) - loss_at(-step)) / (2 * step);
            if (numeric == doctest::Approx(expected).epsilon(0.05))
                break;
        }
        loss_at(0);
        CHECK(numeric == doctest::Approx(expected).epsilon(0.05));
    }

    // One step: every parameter finite afterwards, and the loss moves.
    loss();
    net->backward(dy, &dx);
    sgd optimiser(1e-3f, 0.9f);
    optimiser.step(*net);
    bool parameters_finite = true;
    net->visit_parameters(
        [&](const parameter_view& p) { parameters_finite = parameters_finite && all_finite(p.value); });
    CHECK(parameters_finite);
    const double after = loss();
    CHECK(std::isfinite(after));
    CHECK(after != before);
}

template <std::size_t Size, std::size_t Ratio>
using trainer_preset = VGG<shape<1, Size, Size>, small_conv_arch<vgg11_arch, Ratio>, 10>;
using folder_trainer = VGG<shape<1, 32, 32>, batch_norm<small_conv_arch<vgg11_arch, 4>>, 10>;

template <std::size_t Size>
void torchvision_family()
{
    using input = shape<3, Size, Size>;
    const std::string at = " at " + std::to_string(Size);
    train_one_step<vgg11<input, 10>>("vgg11" + at);
    train_one_step<vgg19_bn<input, 10>>("vgg19_bn" + at);
    if (testing::sweep_size_asked() == sweep_size::small)
        return;
    train_one_step<vgg13<input, 10>>("vgg13" + at);
    train_one_step<vgg16<input, 10>>("vgg16" + at);
    train_one_step<vgg19<input, 10>>("vgg19" + at);
    train_one_step<vgg11_bn<input, 10>>("vgg11_bn" + at);
    train_one_step<vgg13_bn<input, 10>>("vgg13_bn" + at);
    train_one_step<vgg16_bn<input, 10>>("vgg16_bn" + at);
}

} // namespace

TEST_CASE("every network of vgg_train and vgg_train_folder trains a step: finite values, input gradient as the loss's "
          "derivative")
{
    train_one_step<trainer_preset<32, 4>>("vgg_train --resize 32 --ratio 4");
    train_one_step<trainer_preset<32, 1>>("vgg_train --resize 32 --ratio 1");
    train_one_step<trainer_preset<64, 4>>("vgg_train --resize 64 --ratio 4");
    train_one_step<trainer_preset<64, 1>>("vgg_train --resize 64 --ratio 1");
    train_one_step<folder_trainer>("vgg_train_folder's network");
    if (testing::sweep_size_asked() != sweep_size::full) {
        MESSAGE("the 224-pixel presets run with VGG_SWEEP=full");
        return;
    }
    train_one_step<trainer_preset<224, 4>>("vgg_train --resize 224 --ratio 4");
    train_one_step<trainer_preset<224, 1>>("vgg_train --resize 224 --ratio 1");
}

TEST_CASE("every torchvision VGG trains a step at 32x32 and at 224x224: finite values, input gradient as the loss's "
          "derivative")
{
    torchvision_family<32>();
    if (testing::sweep_size_asked() != sweep_size::full) {
        MESSAGE("the 224-pixel torchvision models run with VGG_SWEEP=full");
        return;
    }
    torchvision_family<224>();
}

TEST_CASE("a 256-channel convolution on a 4x4 map backpropagates to its input (it crashed at f8092eb)")
{
    train_one_step<Sequential<shape<256, 4, 4>, Conv3x3<256, 256>, Flatten, Linear<4096, 2>>>(
        "Sequential<shape<256, 4, 4>, Conv3x3<256, 256>, Flatten, Linear<4096, 2>>");
}
