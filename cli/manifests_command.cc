// Registration of `ferryctl manifests ...` with CLI11.
#include <cstdlib>
#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/manifests.h"

namespace ferry::cli {

void AddManifestsCommands(CLI::App& app, int& exit_code) {
  CLI::App* manifests = app.add_subcommand(
      "manifests", "List and edit workloads in a local checkout of the config repo");
  manifests->require_subcommand(1);

  auto list = std::make_shared<ManifestsListOptions>();
  CLI::App* list_cmd = manifests->add_subcommand(
      "list", "List workloads with containers, images, policies, file and line");
  list_cmd->add_option("--path", list->path, "Folder of the checkout")->capture_default_str();
  list_cmd->add_option("-o,--output", list->output, "table or json")->capture_default_str();
  list_cmd->add_option("-n,--namespace", list->namespace_, "Namespace of resources that have none")
      ->capture_default_str();
  list_cmd->callback(
      [list, &exit_code] { exit_code = RunManifestsList(*list, std::cout, std::cerr); });

  auto set_image = std::make_shared<ManifestsSetImageOptions>();
  CLI::App* image_cmd = manifests->add_subcommand(
      "set-image", "Set a container's image in the files, changing only that value");
  image_cmd->add_option("--path", set_image->path, "Folder of the checkout")->capture_default_str();
  image_cmd->add_option("-w,--workload", set_image->workload, "Workload id namespace:kind/name")
      ->required();
  image_cmd->add_option("-c,--container", set_image->container,
                        "Container name (optional when there is one)");
  image_cmd->add_option("-i,--image", set_image->image, "New image reference with tag")->required();
  image_cmd
      ->add_option("-n,--namespace", set_image->namespace_,
                   "Namespace for ids without one and resources without one")
      ->capture_default_str();
  image_cmd->callback([set_image, &exit_code] {
    exit_code = RunManifestsSetImage(*set_image, std::cout, std::cerr);
  });

  auto policy = std::make_shared<ManifestsSetPolicyOptions>();
  policy->user = DefaultUser();
  CLI::App* policy_cmd = manifests->add_subcommand(
      "set-policy", "Change a workload's policy annotations in the files");
  policy_cmd->add_option("--path", policy->path, "Folder of the checkout")->capture_default_str();
  policy_cmd->add_option("-w,--workload", policy->workload, "Workload id namespace:kind/name")
      ->required();
  policy_cmd
      ->add_option("-n,--namespace", policy->namespace_,
                   "Namespace for ids without one and resources without one")
      ->capture_default_str();
  policy_cmd->add_flag("--automate", policy->automate, "Release new images automatically");
  policy_cmd->add_flag("--deautomate", policy->deautomate, "Stop automatic releases");
  policy_cmd->add_flag("--lock", policy->lock, "Lock: no release touches the workload");
  policy_cmd->add_flag("--unlock", policy->unlock, "Unlock");
  policy_cmd->add_option("--tag", policy->tags,
                         "CONTAINER=PATTERN tag filter (glob:, semver:, regexp:); '*' removes it");
  policy_cmd->add_option("--tag-all", policy->tag_all,
                         "The filter of each container (one tag.<container> each, as Flux v1 "
                         "wrote it); '*' removes them");
  AddSafeAutomationFlags(*policy_cmd, *policy);
  policy_cmd->add_option("--user", policy->user,
                         "Who locks (default: $FERRY_USER, $GIT_AUTHOR_NAME, $USER)");
  policy_cmd->add_option("-m,--message", policy->message, "Why it is locked");
  policy_cmd->callback(
      [policy, &exit_code] { exit_code = RunManifestsSetPolicy(*policy, std::cout, std::cerr); });
}

}  // namespace ferry::cli
