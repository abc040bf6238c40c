/** Forward diffusion (noising) as in guided-diffusion: schedules, q_sample and seeded noise. */
export { betaSchedule, betasForAlphaBar, linspace, NoiseSchedule, spaceTimesteps } from "./schedule";
export type { ScheduleName } from "./schedule";
export { noiseFor, qSample, qSampleArray, qSampleCoefficients, qSampleInto } from "./q-sample";
export { gaussian, Rng } from "../../rng";
