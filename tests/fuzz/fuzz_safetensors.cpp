// libFuzzer target: the safetensors decoder, then loading the result into a small network (the
// checks of names, shapes and values that vgg_predict and load_weights run), and reading it as
// that network quantised to int8 (an int8 file), which then runs on one image.
#include <vgg/io/safetensors.hpp>
#include <vgg/train/checkpoint.hpp>
#include <vgg/vgg.hpp>

#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using net_t = vgg::Sequential<vgg::shape<1, 4, 4>, vgg::VGGBlock<1, 1, 2>, vgg::Flatten, vgg::Linear<8, 3>>;
    static net_t net;
    vgg::fuzz::expect_success_or_file_error([&] {
        const auto content =
            vgg::io::decode_safetensors({reinterpret_cast<const char*>(data), size}, vgg::fuzz::input_name);
        vgg::io::load_weights(net, content, vgg::fuzz::input_name, vgg::optimizer_prefix);
    });
    vgg::fuzz::expect_success_or_file_error([&] {
        auto content = vgg::io::decode_safetensors({reinterpret_cast<const char*>(data), size}, vgg::fuzz::input_name);
        vgg::int8::quantized_network<net_t> quantised(std::move(content), vgg::fuzz::input_name);
        vgg::tensor<vgg::shape<1, 4, 4>> image(1);
        for (std::size_t i = 0; i < image.size(); ++i)
            image.data()[i] = float(i) / 16.f;
        quantised.forward(image);
    });
    return 0;
}
