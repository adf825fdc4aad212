# SPDX-License-Identifier: MIT
# The channel handlers (email, sms, push) and their sources.
