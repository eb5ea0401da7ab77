// libFuzzer target: image files to pixels (libjpeg-turbo for JPEG, stb_image for the other
// formats, the size limits) in grey and in RGB, and the resize to 28x28, as vgg_predict and
// data::image_folder read them.
#include <vgg/image/resize.hpp>

#include "fuzz_target.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    // An input that declares a large image (allowed up to 64 M pixels) costs the fuzzer a large
    // allocation and resize per run and teaches it nothing new: the same code runs on small ones.
    int width = 0, height = 0, channels = 0;
    const std::unique_ptr<void, int (*)(tjhandle)> jpeg(tjInitDecompress(), tjDestroy);
    const bool declared = tjDecompressHeader3(jpeg.get(), data, size, &width, &height, &channels, &channels) == 0 ||
                          (size < (1u << 30) && vgg::image::detail::pnm_header_problem({data, size}).empty() &&
                           stbi_info_from_memory(data, static_cast<int>(size), &width, &height, &channels));
    if (declared && (long long)width * height > (1 << 20))
        return 0;
    vgg::fuzz::expect_success_or_file_error([&] {
        for (std::size_t wanted : {1, 3})
            vgg::image::resized_planes(vgg::image::decode({data, size}, vgg::fuzz::input_name, wanted), 28, 28);
    });
    return 0;
}
