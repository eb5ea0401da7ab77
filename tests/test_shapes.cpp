#include <doctest/doctest.h>

#include <sstream>
#include <type_traits>

#include <vgg/vgg.hpp>

using namespace vgg;

// Every compile-time rule is a constexpr bool: the rules hold and fail where they should,
// without a failing build.
static_assert(rules::in_channels_match_v<16, 16>);
static_assert(!rules::in_channels_match_v<3, 1>);
static_assert(rules::channels_positive_v<1> && !rules::channels_positive_v<0>);
static_assert(rules::block_has_convs_v<1> && !rules::block_has_convs_v<0>);
static_assert(rules::poolable_v<224, 224> && !rules::poolable_v<7, 8> && !rules::poolable_v<8, 25> &&
              !rules::poolable_v<0, 2>);
static_assert(rules::network_input_v<shape<1, 28, 28>> && rules::network_input_v<shape<10>> &&
              !rules::network_input_v<shape<28, 28>> && !rules::network_input_v<shape<1, 1, 28, 28>>);
static_assert(layer_spec_for<Conv3x3<1, 2>, shape<1, 8, 8>> && layer_spec_for<ReLU, shape<4>> &&
              !layer_spec_for<conv3x3_layer<1, 2, shape<1, 8, 8>>, shape<1, 8, 8>> && !layer_spec_for<int, shape<4>>);
static_assert(bound_layer<conv3x3_layer<1, 2, shape<1, 8, 8>>> && !bound_layer<Conv3x3<1, 2>> && !bound_layer<int>);
// A layer with parameters that cannot initialise or visit them is no bound layer: Sequential
// would call both.
struct layer_hiding_its_parameters {
    using input_shape = shape<4>;
    using output_shape = shape<4>;
    static constexpr std::string_view name = "Hiding";
    static constexpr std::size_t parameter_count = 4;
    void forward(const tensor<input_shape>&, tensor<output_shape>&, const run_context&) {}
    void backward(const tensor<input_shape>&, const tensor<output_shape>&, const tensor<output_shape>&,
                  tensor<input_shape>*)
    {}
};
static_assert(!bound_layer<layer_hiding_its_parameters> && bound_layer<relu_layer<shape<4>>> &&
              bound_layer<linear_layer<4, 2, shape<4>>> && bound_layer<batchnorm2d_layer<2, shape<2, 4, 4>>>);
static_assert(network<Sequential<shape<4>, Linear<4, 2>>> && network<seed_vgg11> && !network<Linear<4, 2>> &&
              !network<int>);
static_assert(rules::image_input_v<shape<1, 28, 28>> && !rules::image_input_v<shape<784>>);
static_assert(rules::flat_input_v<shape<784>> && !rules::flat_input_v<shape<1, 28, 28>>);
static_assert(rules::in_features_match_v<6272, 6272> && !rules::in_features_match_v<25088, 6272>);
static_assert(rules::head_matches_flatten_v<128 * 7 * 7, 6272> &&
              !rules::head_matches_flatten_v<128 * 7 * 7, 128 * 2 * 2>);
static_assert(rules::dropout_percent_valid_v<50> && !rules::dropout_percent_valid_v<100>);
static_assert(rules::ratio_keeps_channels_v<64, 4> && !rules::ratio_keeps_channels_v<64, 128> &&
              !rules::ratio_keeps_channels_v<64, 0>);
static_assert(rules::classes_positive_v<10> && !rules::classes_positive_v<0>);

// Shape arithmetic of the seed's network, layer by layer.
static_assert(std::is_same_v<VGGBlock<1, 1, 64>::output_shape<shape<1, 224, 224>>, shape<64, 112, 112>>);
static_assert(std::is_same_v<output_shape_t<shape<1, 224, 224>, VGGBlock<1, 1, 64>, VGGBlock<1, 64, 128>,
                                            VGGBlock<2, 128, 256>, VGGBlock<2, 256, 512>, VGGBlock<2, 512, 512>>,
                             shape<512, 7, 7>>);
static_assert(std::is_same_v<output_shape_t<shape<512, 7, 7>, Flatten>, shape<25088>>);
static_assert(std::is_same_v<seed_vgg11::output_shape, shape<10>>);
static_assert(std::is_same_v<small_conv_arch<vgg11_arch, 4>,
                             conv_arch<block<1, 16>, block<1, 32>, block<2, 64>, block<2, 128>, block<2, 128>>>);
static_assert(shape<3, 224, 224>::size == 150528 && shape<3, 224, 224>::rank == 3);

TEST_CASE("the seed's VGG-11 walks a 1x224x224 input through the seed's 13 output shapes")
{
    using net_t = VGG<shape<1, 224, 224>, vgg11_arch, 10>;
    constexpr auto rows = summary<net_t>();
    static_assert(rows.size() == 13);
    const char* expected[13] = {"VGGBlock [1, 64, 112, 112]",
                                "VGGBlock [1, 128, 56, 56]",
                                "VGGBlock [1, 256, 28, 28]",
                                "VGGBlock [1, 512, 14, 14]",
                                "VGGBlock [1, 512, 7, 7]",
                                "Flatten [1, 25088]",
                                "Linear [1, 4096]",
                                "ReLU [1, 4096]",
                                "Dropout [1, 4096]",
                                "Linear [1, 4096]",
                                "ReLU [1, 4096]",
                                "Dropout [1, 4096]",
                                "Linear [1, 10]"};
    for (std::size_t i = 0; i < rows.size(); ++i) {
        std::ostringstream line;
        line << rows[i].name << ' ';
        print_shape(line, 1, rows[i]);
        CHECK(line.str() == expected[i]);
    }
}

TEST_CASE("parameter counts equal torchvision's for the VGG family on 3x224x224, 1000 classes")
{
    // torchvision.models.vgg11/13/16/19 (without batch norm): sum(p.numel() for p in m.parameters()).
    CHECK(vgg11<shape<3, 224, 224>>::parameter_count == 132863336);
    CHECK(vgg13<shape<3, 224, 224>>::parameter_count == 133047848);
    CHECK(vgg16<shape<3, 224, 224>>::parameter_count == 138357544);
    CHECK(vgg19<shape<3, 224, 224>>::parameter_count == 143667240);
    static_assert(std::is_same_v<config_D, vgg16_arch>);
}

TEST_CASE("parameter names and shapes follow the seed's nn.Sequential state_dict")
{
    seed_vgg11 net;
    std::ostringstream names;
    std::size_t total = 0;
    net.visit_parameters([&](const parameter_view& p) {
        names << p.name << '[';
        for (std::size_t i = 0; i < p.shape.size(); ++i)
            names << (i ? "," : "") << p.shape[i];
        names << "] ";
        total += p.value.size();
        CHECK(p.grad.size() == p.value.size());
    });
    CHECK(names.str() ==
          "0.0.weight[16,1,3,3] 0.0.bias[16] 1.0.weight[32,16,3,3] 1.0.bias[32] 2.0.weight[64,32,3,3] 2.0.bias[64] "
          "2.2.weight[64,64,3,3] 2.2.bias[64] 3.0.weight[128,64,3,3] 3.0.bias[128] 3.2.weight[128,128,3,3] "
          "3.2.bias[128] 4.0.weight[128,128,3,3] 4.0.bias[128] 4.2.weight[128,128,3,3] 4.2.bias[128] "
          "6.weight[4096,6272] 6.bias[4096] 9.weight[4096,4096] 9.bias[4096] 12.weight[10,4096] 12.bias[10] ");
    CHECK(total == seed_vgg11::parameter_count);
}

TEST_CASE("a model summary prints every layer with its shape and parameter count")
{
    std::ostringstream out;
    print_summary<seed_vgg11>(out, 128);
    const auto text = out.str();
    CHECK(text.find("0 VGGBlock   [128, 16, 112, 112]") != std::string::npos);
    CHECK(text.find("5 Flatten    [128, 6272]") != std::string::npos);
    CHECK(text.find("12 Linear    [128, 10]") != std::string::npos);
    CHECK(text.find("total parameters: 43093322") != std::string::npos);
}

TEST_CASE("input channels and classes are free: a VGG-16 for RGB and a small VGG for 1x32x32")
{
    using rgb_t = vgg16<shape<3, 64, 64>, 5>;
    static_assert(std::is_same_v<rgb_t::output_shape, shape<5>>);
    using tiny_t = VGG<shape<1, 32, 32>, small_conv_arch<vgg11_arch, 4>, 10>;
    static_assert(std::is_same_v<std::remove_cvref_t<decltype(std::declval<tiny_t&>().layer<6>())>,
                                 linear_layer<128, 4096, shape<128>>>);
    tiny_t net;
    rng random(2);
    net.initialize(weight_init::xavier_uniform, random);
    tensor<shape<1, 32, 32>> x(3);
    for (auto& v : x.values())
        v = random.uniform();
    const auto& y = net.forward(x);
    CHECK(y.batch() == 3);
    CHECK(std::all_of(y.values().begin(), y.values().end(), [](float v) { return std::isfinite(v); }));
}
