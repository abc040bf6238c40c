/**
 * Where the datasets and the official guided-diffusion checkpoints come from: one table each.
 * md5 values are the publishers' / torchvision's well-known ones; where none is published we record none and
 * the downloader writes the sha256 it computed to a `<file>.sha256` sidecar instead.
 */
import type { DatasetName } from "./index";

export interface SourceFile {
  /** File name under the dataset's folder. */
  file: string;
  /** Download URL; absent for files that must be placed by hand. */
  url?: string;
  md5?: string;
  /** Human size, for messages. */
  approxSize?: string;
  /** Extract this archive into the dataset folder (+ `into`), dropping `strip` leading path components. */
  extract?: { into?: string; strip?: number };
  /** A path (relative to the dataset folder) whose presence means this file was already extracted/placed. */
  produces: string;
}

export interface DatasetSource {
  name: DatasetName;
  title: string;
  /** Sub-folder of --root that holds the dataset ("" = root itself). */
  folder: string;
  files: SourceFile[];
  /** Set when the files cannot be downloaded by script: what the user must do. */
  manual?: string;
}

const VGG = "https://www.robots.ox.ac.uk/~vgg/data";

export const DATASET_SOURCES: Record<DatasetName, DatasetSource> = {
  aircraft: {
    name: "aircraft", title: "FGVC-Aircraft", folder: "",
    files: [{ file: "fgvc-aircraft-2013b.tar.gz", url: `${VGG}/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz`, approxSize: "2.6 GB", extract: {}, produces: "fgvc-aircraft-2013b/data/variants.txt" }],
  },
  flowers: {
    name: "flowers", title: "Oxford Flowers-102", folder: "flowers-102",
    files: [
      { file: "102flowers.tgz", url: `${VGG}/flowers/102/102flowers.tgz`, md5: "52808999861908f626f3c1f4e79d11fa", approxSize: "330 MB", extract: {}, produces: "jpg" },
      { file: "imagelabels.mat", url: `${VGG}/flowers/102/imagelabels.mat`, md5: "e0620be6f572b9609742df49c70aed4d", produces: "imagelabels.mat" },
      { file: "setid.mat", url: `${VGG}/flowers/102/setid.mat`, md5: "a5357ecc9cb78c4bef273ce3793fc85c", produces: "setid.mat" },
    ],
  },
  cub: {
    name: "cub", title: "CUB-200-2011", folder: "",
    files: [{
      file: "CUB_200_2011.tgz", url: "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",
      md5: "97eceeb196236b17998738112f37df78", approxSize: "1.1 GB", extract: {}, produces: "CUB_200_2011/images.txt",
    }],
  },
  dogs: {
    name: "dogs", title: "Stanford Dogs", folder: "stanford_dogs",
    files: [
      { file: "images.tar", url: "http://vision.stanford.edu/aditya86/ImageNetDogs/images.tar", approxSize: "760 MB", extract: {}, produces: "Images" },
      { file: "lists.tar", url: "http://vision.stanford.edu/aditya86/ImageNetDogs/lists.tar", approxSize: "0.5 MB", extract: {}, produces: "train_list.mat" },
    ],
  },
  cars: {
    name: "cars", title: "Stanford Cars", folder: "stanford_cars",
    manual:
      "The original Stanford Cars links (ai.stanford.edu/~jkrause/cars/...) are dead and there is no official mirror. " +
      "Obtain the original files elsewhere (e.g. a copy you trust) and put them in the dataset folder; the script checks their " +
      "md5 (the values torchvision used) and extracts them. Already extracted folders (devkit/, cars_train/, cars_test/) are accepted too.",
    files: [
      { file: "car_devkit.tgz", md5: "c3b158d763b6e2245038c8ad08e45376", approxSize: "330 KB", extract: {}, produces: "devkit/cars_meta.mat" },
      { file: "cars_train.tgz", md5: "065e5b463ae28d29e77c1b4b166cfe61", approxSize: "980 MB", extract: {}, produces: "cars_train" },
      { file: "cars_test.tgz", md5: "4ce7ebf6a94d07f1952d94dd34c4d501", approxSize: "960 MB", extract: {}, produces: "cars_test" },
      { file: "cars_test_annos_withlabels.mat", md5: "b0a2b23655a3edd16d84508592a98d10", approxSize: "180 KB", produces: "cars_test_annos_withlabels.mat" },
    ],
  },
  nabirds: {
    name: "nabirds", title: "NABirds", folder: "",
    manual:
      "NABirds requires accepting the Cornell Lab of Ornithology's terms of use (https://dl.allaboutbirds.org/nabirds). " +
      "Download nabirds.tar.gz there and put it in the dataset folder (or extract it there yourself, giving nabirds/images.txt ...).",
    files: [{ file: "nabirds.tar.gz", approxSize: "8.8 GB", extract: {}, produces: "nabirds/images.txt" }],
  },
  imagenet: {
    name: "imagenet", title: "ImageNet ILSVRC-2012", folder: "",
    manual:
      "ImageNet requires an account at https://image-net.org and accepting its terms; download the ILSVRC 2012 files from the " +
      "ILSVRC2012 download page and put them in the dataset folder. The script then checks each file's md5, extracts the training " +
      "archive (1000 per-class tars, each into train/<wnid>/, deleting the inner tar after it), the validation archive (val/, " +
      "50,000 flat images labelled through the devkit) and the devkit (ILSVRC2012_devkit_t12/), and finally counts the images " +
      "per split (1,281,167 train and 50,000 val over 1000 classes). Already extracted train/, val/ and devkit folders are accepted too.",
    files: [
      { file: "ILSVRC2012_devkit_t12.tar.gz", md5: "fa75699e90414af021442c21a62c3abf", approxSize: "2.5 MB", extract: {}, produces: "ILSVRC2012_devkit_t12/data/meta.mat" },
      { file: "ILSVRC2012_img_val.tar", md5: "29b22e2961454d5413ddabcf34fc5622", approxSize: "6.3 GB", extract: { into: "val" }, produces: "val" },
      { file: "ILSVRC2012_img_train.tar", md5: "1d675b47d978889d74fa0da5fadfb00e", approxSize: "138 GB", extract: { into: "train" }, produces: "train" },
    ],
  },
};

export interface CheckpointSource {
  /** Name used on the command line. */
  name: string;
  file: string;
  url: string;
  description: string;
  /** Fetched by default (the model the paper probes). */
  default?: boolean;
}

const GD = "https://openaipublic.blob.core.windows.net/diffusion/jul-2021";

/** The checkpoints published with guided-diffusion (README "Download pre-trained models"). No checksums are published. */
export const CHECKPOINT_SOURCES: CheckpointSource[] = [
  { name: "256-uncond", file: "256x256_diffusion_uncond.pt", url: `${GD}/256x256_diffusion_uncond.pt`, description: "ImageNet 256x256 unconditional diffusion (the paper's model)", default: true },
  { name: "256-cond", file: "256x256_diffusion.pt", url: `${GD}/256x256_diffusion.pt`, description: "ImageNet 256x256 class-conditional diffusion" },
  { name: "64-cond", file: "64x64_diffusion.pt", url: `${GD}/64x64_diffusion.pt`, description: "ImageNet 64x64 class-conditional diffusion" },
  { name: "128-cond", file: "128x128_diffusion.pt", url: `${GD}/128x128_diffusion.pt`, description: "ImageNet 128x128 class-conditional diffusion" },
  { name: "512-cond", file: "512x512_diffusion.pt", url: `${GD}/512x512_diffusion.pt`, description: "ImageNet 512x512 class-conditional diffusion" },
  { name: "64-classifier", file: "64x64_classifier.pt", url: `${GD}/64x64_classifier.pt`, description: "noisy-image classifier, 64x64" },
  { name: "128-classifier", file: "128x128_classifier.pt", url: `${GD}/128x128_classifier.pt`, description: "noisy-image classifier, 128x128" },
  { name: "256-classifier", file: "256x256_classifier.pt", url: `${GD}/256x256_classifier.pt`, description: "noisy-image classifier, 256x256" },
  { name: "512-classifier", file: "512x512_classifier.pt", url: `${GD}/512x512_classifier.pt`, description: "noisy-image classifier, 512x512" },
  { name: "64-256-upsampler", file: "64_256_upsampler.pt", url: `${GD}/64_256_upsampler.pt`, description: "64x64 -> 256x256 upsampler" },
  { name: "128-512-upsampler", file: "128_512_upsampler.pt", url: `${GD}/128_512_upsampler.pt`, description: "128x128 -> 512x512 upsampler" },
  { name: "lsun-bedroom", file: "lsun_bedroom.pt", url: `${GD}/lsun_bedroom.pt`, description: "LSUN bedroom 256x256 unconditional" },
  { name: "lsun-cat", file: "lsun_cat.pt", url: `${GD}/lsun_cat.pt`, description: "LSUN cat 256x256 unconditional" },
  { name: "lsun-horse", file: "lsun_horse.pt", url: `${GD}/lsun_horse.pt`, description: "LSUN horse 256x256 unconditional" },
  { name: "lsun-horse-nodropout", file: "lsun_horse_nodropout.pt", url: `${GD}/lsun_horse_nodropout.pt`, description: "LSUN horse 256x256 unconditional (no dropout)" },
];
