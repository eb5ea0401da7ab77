#pragma once
/// vgg: compile-time-shaped VGG networks for the CPU. Include this one header.

#include "vgg/config.hpp"

#include "vgg/core/large_pages.hpp"
#include "vgg/core/layer.hpp"
#include "vgg/core/parameter.hpp"
#include "vgg/core/rng.hpp"
#include "vgg/core/rules.hpp"
#include "vgg/core/shape.hpp"
#include "vgg/core/summary.hpp"
#include "vgg/core/tensor.hpp"
#include "vgg/core/threads.hpp"

#include "vgg/layers/adaptive_avgpool.hpp"
#include "vgg/layers/batchnorm.hpp"
#include "vgg/layers/conv3x3.hpp"
#include "vgg/layers/dropout.hpp"
#include "vgg/layers/flatten.hpp"
#include "vgg/layers/layer_list.hpp"
#include "vgg/layers/linear.hpp"
#include "vgg/layers/maxpool.hpp"
#include "vgg/layers/relu.hpp"
#include "vgg/layers/sequential.hpp"
#include "vgg/layers/vgg_block.hpp"
#include "vgg/layers/vgg_block_bn.hpp"

#include "vgg/models/torchvision.hpp"
#include "vgg/models/vgg.hpp"

#include "vgg/int8/quantized_network.hpp"

#include "vgg/train/adam.hpp"
#include "vgg/train/clip_grad_norm.hpp"
#include "vgg/train/loss.hpp"
#include "vgg/train/schedule.hpp"
#include "vgg/train/sgd.hpp"
