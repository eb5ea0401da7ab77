// libFuzzer target: the safetensors decoder, then loading the result into a small network (the
// checks of names, shapes and values that vgg_predict and load_weights run).
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
    return 0;
}
