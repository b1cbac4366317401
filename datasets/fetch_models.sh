#!/usr/bin/env bash
# placeholder until the datasets work lands (issue 3)
exit 0
