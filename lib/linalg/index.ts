/** Float64 linear algebra for the conversion pipeline. */
export { eigh, eighJacobi, type SymmetricEigen } from './eigh.js';
export { hadamardTransform, isPowerOfTwo, randomizedHadamardMatrix, randomSigns } from './hadamard.js';
export * from './matrix.js';
export { type PrincipalComponents, principalComponents, psdFactor, svd, type ThinSvd } from './svd.js';
