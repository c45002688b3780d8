"""Page images to the pixels the model sees: decoding (JPEG, PNG, TIFF, EXIF orientation), the
page's geometry, resizing, padding and tiling, regions of a page, and scan augmentation."""
