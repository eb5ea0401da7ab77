// libFuzzer target: vgg_predict's image path (stb_image's decoders, the size limits, the resize
// to 28x28).
#include "../../examples/image_input.hpp"
#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    vgg::fuzz::expect_success_or_file_error([&] { vgg_predict::decode_grey_28x28({data, size}, vgg::fuzz::input_name); });
    return 0;
}
