// turboattn: the evaluation driver (eval/README.md).
#include "eval/commands.h"

int main(int argc, char** argv) { return turbo::eval::turboattn_main(argc, argv); }
