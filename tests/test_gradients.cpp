#include <doctest/doctest.h>

#include "gradient_check.hpp"

using namespace vgg;
using vgg::testing::check_layer;

TEST_CASE("Conv3x3 gradients match central differences")
{
    SUBCASE("one input channel")
    {
        Conv3x3<1, 3>::layer<shape<1, 5, 6>> conv;
        auto report = check_layer(conv, 2);
        CHECK_MESSAGE(report.ok, report.message);
    }
    SUBCASE("several channels, non-square")
    {
        Conv3x3<3, 4>::layer<shape<3, 4, 7>> conv;
        auto report = check_layer(conv, 3);
        CHECK_MESSAGE(report.ok, report.message);
    }
    SUBCASE("16 channels and even sides: the Winograd F(2x2, 3x3) path")
    {
        static_assert(kernels::winograd_tile({16, 17, 4, 6}, 2) == 2);
        Conv3x3<16, 17>::layer<shape<16, 4, 6>> conv;
        auto report = check_layer(conv, 2);
        CHECK_MESSAGE(report.ok, report.message);
    }
    SUBCASE("16 channels and sides of multiples of 4: the Winograd F(4x4, 3x3) path")
    {
        static_assert(kernels::winograd_tile({17, 16, 4, 8}, 2) == 4);
        Conv3x3<17, 16>::layer<shape<17, 4, 8>> conv;
        auto report = check_layer(conv, 2);
        CHECK_MESSAGE(report.ok, report.message);
    }
}

TEST_CASE("ReLU gradients match central differences")
{
    relu_layer<shape<3, 4, 4>> relu;
    auto report = check_layer(relu, 2);
    CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE("MaxPool2x2 gradients match central differences")
{
    MaxPool2x2::layer<shape<2, 6, 4>> pool;
    auto report = check_layer(pool, 2);
    CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE("Flatten gradients match central differences")
{
    Flatten::layer<shape<2, 3, 3>> flatten;
    auto report = check_layer(flatten, 2);
    CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE("Linear gradients match central differences")
{
    Linear<12, 5>::layer<shape<12>> linear;
    auto report = check_layer(linear, 3);
    CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE("Dropout gradients match central differences in training and evaluation")
{
    Dropout<50>::layer<shape<40>> dropout;
    auto train = check_layer(dropout, 3, 1, {mode::train, 7});
    CHECK_MESSAGE(train.ok, train.message);
    auto eval = check_layer(dropout, 3, 1, {mode::eval, 7});
    CHECK_MESSAGE(eval.ok, eval.message);
}

TEST_CASE("VGGBlock gradients match central differences")
{
    SUBCASE("one convolution")
    {
        VGGBlock<1, 2, 3>::layer<shape<2, 6, 6>> block;
        auto report = check_layer(block, 2);
        CHECK_MESSAGE(report.ok, report.message);
    }
    SUBCASE("three convolutions")
    {
        VGGBlock<3, 1, 2>::layer<shape<1, 4, 6>> block;
        auto report = check_layer(block, 2);
        CHECK_MESSAGE(report.ok, report.message);
    }
    SUBCASE("two convolutions on the Winograd paths, pooled from F(2x2, 3x3) and from F(4x4, 3x3) tiles")
    {
        static_assert(kernels::winograd_tile({16, 16, 6, 6}, 2) == 2 && kernels::winograd_tile({16, 16, 4, 4}, 2) == 4);
        VGGBlock<2, 16, 16>::layer<shape<16, 6, 6>> block;
        auto report = check_layer(block, 2);
        CHECK_MESSAGE(report.ok, report.message);
        VGGBlock<2, 16, 16>::layer<shape<16, 4, 4>> block4;
        report = check_layer(block4, 2);
        CHECK_MESSAGE(report.ok, report.message);
    }
}

TEST_CASE("softmax cross-entropy gradient matches central differences")
{
    rng random(5);
    tensor<shape<7>> logits(4), grad;
    vgg::testing::fill_uniform(logits.values(), random, -3.f, 3.f);
    const int labels[4] = {0, 6, 3, 3};
    softmax_cross_entropy(logits, labels, grad);
    tensor<shape<7>> scratch;
    auto loss = [&] { return double(softmax_cross_entropy(logits, labels, scratch).loss); };
    auto report = vgg::testing::check_gradient("logits", logits.values(), grad.values(), loss, 1e-2, 1e-4);
    CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE("a whole Sequential backpropagates through every layer")
{
    using net_t = Sequential<shape<1, 8, 8>, VGGBlock<1, 1, 2>, VGGBlock<2, 2, 3>, Flatten, Linear<12, 6>, ReLU,
                             Dropout<50>, Linear<6, 4>>;
    net_t net;
    rng random(3);
    net.initialize(weight_init::xavier_uniform, random);
    tensor<shape<1, 8, 8>> x(2), dx;
    vgg::testing::fill_uniform(x.values(), random);
    const int labels[2] = {1, 3};
    const run_context context{mode::train, 11};
    tensor<shape<4>> grad;
    auto loss = [&] {
        tensor<shape<4>> scratch;
        return double(softmax_cross_entropy(net.forward(x, context), labels, scratch).loss);
    };
    softmax_cross_entropy(net.forward(x, context), labels, grad);
    net.backward(grad, &dx);
    std::vector<std::vector<float>> grads;
    net.visit_parameters([&](const parameter_view& p) { grads.emplace_back(p.grad.begin(), p.grad.end()); });
    auto report = vgg::testing::check_gradient("input", x.values(), dx.values(), loss, 2e-2, 1e-4);
    std::size_t k = 0;
    net.visit_parameters([&](const parameter_view& p) {
        auto part = vgg::testing::check_gradient(p.name, p.value, grads[k++], loss, 2e-2, 1e-4);
        report.ok = report.ok && part.ok;
        report.message += part.message;
    });
    CHECK(k == 10);
    CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE("the gradient checker catches a wrong gradient and names the element")
{
    std::vector<float> values{1.f, 2.f, 3.f};
    const std::vector<float> wrong{2.f, 4.f, 7.f}; // d/dx of x^2 is 2x: the last is off
    auto loss = [&] { return double(values[0] * values[0] + values[1] * values[1] + values[2] * values[2]); };
    auto report = vgg::testing::check_gradient("x", values, wrong, loss);
    CHECK_FALSE(report.ok);
    const auto at = report.message.find("x[2]: numeric ");
    REQUIRE(at != std::string::npos);
    CHECK(std::stod(report.message.substr(at + 14)) == doctest::Approx(6.0).epsilon(1e-3));
    CHECK(report.message.find(", analytic 7") != std::string::npos);
    CHECK(report.message.find("x[0]") == std::string::npos);
    CHECK(report.message.find("x[1]") == std::string::npos);
}
