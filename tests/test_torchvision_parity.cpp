// torchvision's VGGs and vgg's give the same logits: tests/torchvision_reference.py builds
// torchvision models with random weights, converts them with tools/torchvision_to_safetensors.py
// and records their outputs; vgg loads the converted files and must agree.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include <vgg/io/safetensors.hpp>
#include <vgg/vgg.hpp>

#include "cpu_skip.hpp"
#include "test_support.hpp"

using namespace vgg;
namespace fs = std::filesystem;

namespace {

fs::path torchvision_reference_dir()
{
    return testing::python_reference(VGG_TEST_SOURCE_DIR, VGG_TEST_BINARY_DIR, "torchvision_reference.py",
                                     "torchvision_reference");
}

template <class Net>
void check_against_torchvision(const std::string& model, std::size_t size)
{
    constexpr std::size_t classes = Net::output_shape::size;
    const fs::path dir = torchvision_reference_dir();
    auto net = std::make_unique<Net>();
    io::load_weights(*net, dir / (model + ".safetensors"));
    const auto reference = io::read_safetensors(dir / (model + "-" + std::to_string(size) + ".safetensors"));
    const auto& images = reference.tensors.at("images");
    const auto& expected = reference.tensors.at("logits");
    tensor<typename Net::input_shape> x(images.shape[0]);
    REQUIRE(images.values.size() == x.size());
    std::copy(images.values.begin(), images.values.end(), x.data());

    const auto& logits = net->forward(x, {mode::eval, 0});
    REQUIRE(logits.size() == expected.values.size());
    float largest = 0.f, worst = 0.f;
    for (std::size_t i = 0; i < logits.size(); ++i) {
        largest = std::max(largest, std::abs(expected.values[i]));
        worst = std::max(worst, std::abs(logits.data()[i] - expected.values[i]));
    }
    MESSAGE(model << " at " << size << "x" << size << ": largest |logit| " << largest << ", largest difference "
                  << worst << " (" << classes << " classes)");
    CHECK(largest > 0.f);
    CHECK(worst <= 1e-4f * largest);
}

} // namespace

TEST_CASE("torchvision's vgg11_bn and vgg16, converted, give torchvision's logits (1e-4 relative), at 224 and at 96")
{
    SUBCASE("vgg11_bn at 224") { check_against_torchvision<vgg11_bn<shape<3, 224, 224>>>("vgg11_bn", 224); }
    SUBCASE("vgg11_bn at 96: the adaptive pool spreads 3x3 features over 7x7")
    {
        check_against_torchvision<vgg11_bn<shape<3, 96, 96>>>("vgg11_bn", 96);
    }
    SUBCASE("vgg16 at 224") { check_against_torchvision<vgg16<shape<3, 224, 224>>>("vgg16", 224); }
}
