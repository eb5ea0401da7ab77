// libFuzzer target: io::load_onnx and, for a quantised model, int8::load_onnx (the protobuf, the
// graph walked against a network, the initializers), with small networks so that whole valid
// models fit in a corpus.
#include <vgg/onnx.hpp>
#include <vgg/vgg.hpp>

#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    using net_t = vgg::Sequential<vgg::shape<1, 8, 8>, vgg::VGGBlockBN<1, 1, 2>, vgg::AdaptiveAvgPool2d<3, 3>,
                                  vgg::Flatten, vgg::Linear<18, 3>>;
    using int8_net_t = vgg::Sequential<vgg::shape<1, 8, 8>, vgg::VGGBlockBN<1, 1, 2>, vgg::Flatten, vgg::Linear<32, 3>>;
    static net_t net;
    vgg::fuzz::expect_success_or_file_error([&] {
        const auto model = vgg::io::parse_onnx({reinterpret_cast<const char*>(data), size}, vgg::fuzz::input_name);
        if (vgg::io::quantised_node(model))
            vgg::int8::load_onnx<int8_net_t>(model, vgg::fuzz::input_name);
        else
            vgg::io::load_onnx(net, model, vgg::fuzz::input_name);
    });
    return 0;
}
