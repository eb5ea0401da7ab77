#pragma once
// ONNX in and out (component vgg::onnx): io::save_onnx / io::to_onnx export a network for
// inference, io::load_onnx reads a model into the matching compile-time network, and
// int8::save_onnx and int8::load_onnx write and read an int8 network in QDQ form.
#include "vgg/onnx/export.hpp"
#include "vgg/onnx/import.hpp"
#include "vgg/onnx/int8_export.hpp"
#include "vgg/onnx/int8_import.hpp"
