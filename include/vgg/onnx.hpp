#pragma once
// ONNX in and out (component vgg::onnx): io::save_onnx / io::to_onnx export a network for
// inference, io::load_onnx reads a model into the matching compile-time network.
#include "vgg/onnx/export.hpp"
#include "vgg/onnx/import.hpp"
