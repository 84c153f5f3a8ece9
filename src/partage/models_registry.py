"""Every domain's models, imported once so that the metadata is complete (migrations, tests)."""

from partage.audit import models as audit_models
from partage.db import Base
from partage.directory import models as directory_models
from partage.documents import models as document_models
from partage.identity import models as identity_models
from partage.security import models as security_models

metadata = Base.metadata

__all__ = [
    "audit_models",
    "directory_models",
    "document_models",
    "identity_models",
    "metadata",
    "security_models",
]
