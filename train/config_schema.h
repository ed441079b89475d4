#pragma once
// The schema: reads each section of a YAML tree into its struct and checks every value, naming the
// key path of the first bad one. Internal to train/config.cpp.
#include <yaml-cpp/yaml.h>

#include "train/config.h"
#include "train/config_reader.h"

namespace sparta::train::config_detail {

RunConfig config_from_tree(const YAML::Node& root, const Origin& origin);

}  // namespace sparta::train::config_detail
