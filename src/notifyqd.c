/* SPDX-License-Identifier: MIT */
/* Placeholder replaced by the supervisor work in progress. */
int main(void)
{
    return 1;
}
