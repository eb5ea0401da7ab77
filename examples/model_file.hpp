#pragma once
// A model file as vgg_predict and vgg_convert read it, by its extension: an ONNX model (.onnx,
// when built with vgg::onnx; fp32, or int8 in QDQ form) or safetensors (weights, a checkpoint of
// vgg_train, or an int8 network).
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <vgg/int8/quantized_network.hpp>
#include <vgg/io/read_file.hpp>
#include <vgg/io/safetensors.hpp>
#include <vgg/train/checkpoint.hpp>
#ifdef VGG_WITH_ONNX
#include <vgg/onnx.hpp>
#endif

namespace vgg_examples {

inline bool is_onnx_path(const std::filesystem::path& path) { return path.extension() == ".onnx"; }

/// Writes an int8 network: as ONNX in QDQ form to a .onnx path, else as safetensors.
template <class Net>
void save_int8_network(const vgg::int8::quantized_network<Net>& network, const std::filesystem::path& path)
{
    if (!is_onnx_path(path))
        return network.save(path);
#ifdef VGG_WITH_ONNX
    vgg::int8::save_onnx(network, path);
#else
    throw vgg::io::file_error(path, "not written: an ONNX model needs vgg::onnx, and this program was built without "
                                    "it (install libonnx-dev and libprotobuf-dev, then build again)");
#endif
}

class model_file {
public:
    explicit model_file(const std::filesystem::path& path) : path_(path)
    {
        if (!is_onnx_path(path)) {
            safetensors_ = vgg::io::read_safetensors(path);
            metadata_ = safetensors_.metadata;
            return;
        }
#ifdef VGG_WITH_ONNX
        const auto bytes = vgg::io::read_file_bytes(path);
        onnx_ = vgg::io::parse_onnx(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), path);
        int8_onnx_ = vgg::io::quantised_node(onnx_) != nullptr;
#else
        throw vgg::io::file_error(path, "is an ONNX model, but this program was built without vgg::onnx "
                                        "(install libonnx-dev and libprotobuf-dev, then build again)");
#endif
    }

    /// Loads the weights into `net`: the file must be the network's (a checkpoint's optimiser state is passed by).
    template <class Net>
    void load_into(Net& net)
    {
#ifdef VGG_WITH_ONNX
        if (is_onnx_path(path_)) {
            metadata_ = vgg::io::load_onnx(net, onnx_, path_).metadata;
            return;
        }
#endif
        vgg::io::load_weights(net, safetensors_, path_, vgg::optimizer_prefix);
    }

    /// Whether the file is an int8 network (quantized_network::save, or an ONNX model in QDQ form), not fp32 weights.
    bool is_int8() const
    {
        const auto format = metadata_.find("format");
        return int8_onnx_ || (format != metadata_.end() && format->second == vgg::io::int8_network_format);
    }

    /// The int8 network the file holds (is_int8()).
    template <class Net>
    vgg::int8::quantized_network<Net> int8_network() const
    {
#ifdef VGG_WITH_ONNX
        if (is_onnx_path(path_))
            return vgg::int8::load_onnx<Net>(onnx_, path_);
#endif
        return vgg::int8::quantized_network<Net>(safetensors_, path_);
    }

    /// The file's metadata (an ONNX model's after load_into).
    const std::map<std::string, std::string>& metadata() const { return metadata_; }
    const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
    vgg::io::safetensors_content safetensors_;
#ifdef VGG_WITH_ONNX
    ::onnx::ModelProto onnx_;
#endif
    std::map<std::string, std::string> metadata_;
    bool int8_onnx_ = false;
};

} // namespace vgg_examples
