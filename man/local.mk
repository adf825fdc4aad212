# SPDX-License-Identifier: MIT
dist_man_MANS += man/notifyqd.8 man/notifyqctl.1 man/notifyq.yaml.5
dist_man_MANS += man/notifyq-jobs.7
