/* The fixed A/B numbers shared by good/custom_lora.c (which computes s * B (A x) by hand in a
 * custom expert) and plugin_test.c (which registers the same A/B as a LoRA expert). */
#ifndef LMX_TEST_FIXED_NUMBERS_H
#define LMX_TEST_FIXED_NUMBERS_H

#include <stdint.h>

enum { FIXED_RANK = 3 };
#define FIXED_ALPHA 1.5f /* scale = alpha / rank = 0.5 */

/* Element `index` of A (which 0, [rank x in]) or B (which 1, [out x rank]) for (layer, module):
 * a hash of the four numbers mapped to [-0.25, 0.25). */
static inline float fixed_value(uint32_t layer, uint32_t module, uint32_t which, uint32_t index) {
    uint32_t h = layer * 7919u + module * 104729u + which * 1299709u + index * 2654435761u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    h *= 3266489917u;
    h ^= h >> 16;
    return ((float)(h >> 8) / 16777216.0f - 0.5f) * 0.5f;
}

#endif
