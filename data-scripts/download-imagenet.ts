/** Download (or verify what was placed by hand), extract and check imagenet: see `--help` and download-common.ts. */
import { main } from "./download-common";

main("imagenet");
