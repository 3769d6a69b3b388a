//! What the AWS clients (SQS, S3) share.

use aws_sdk_sqs::error::SdkError;

/// Whether the service answered, and answered no (4xx: the queue or bucket
/// does not exist, access is denied): the configuration is wrong, and
/// waiting will not mend it. Anything else (no answer, a 5xx) may pass.
/// Every AWS SDK crate names the same `SdkError` type.
pub(crate) fn refused<E>(err: &SdkError<E>) -> bool {
    matches!(err, SdkError::ServiceError(service) if service.raw().status().is_client_error())
}
