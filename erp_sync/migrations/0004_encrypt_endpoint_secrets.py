# Endpoint secrets are stored encrypted (mes.crypto, Fernet): the column is renamed (it no
# longer holds the secret itself), widened for the token, and the plain secrets already
# there are encrypted in place. Reversed, they are decrypted again (with the keys configured
# at that time).

from django.db import migrations, models


def encrypt_secrets(apps, schema_editor):
    from mes import crypto

    ErpEndpoint = apps.get_model("erp_sync", "ErpEndpoint")
    for endpoint in ErpEndpoint.objects.using(schema_editor.connection.alias).all():
        if not crypto.is_encrypted(endpoint.secret_encrypted):
            endpoint.secret_encrypted = crypto.encrypt(endpoint.secret_encrypted)
            endpoint.save(update_fields=["secret_encrypted"])


def decrypt_secrets(apps, schema_editor):
    from mes import crypto

    ErpEndpoint = apps.get_model("erp_sync", "ErpEndpoint")
    for endpoint in ErpEndpoint.objects.using(schema_editor.connection.alias).all():
        if crypto.is_encrypted(endpoint.secret_encrypted):
            endpoint.secret_encrypted = crypto.decrypt(endpoint.secret_encrypted)
            endpoint.save(update_fields=["secret_encrypted"])


class Migration(migrations.Migration):
    dependencies = [
        ("erp_sync", "0003_alter_outboxevent_event_type"),
    ]

    operations = [
        migrations.RenameField(
            model_name="erpendpoint",
            old_name="secret",
            new_name="secret_encrypted",
        ),
        migrations.AlterField(
            model_name="erpendpoint",
            name="secret_encrypted",
            field=models.CharField(
                editable=False, max_length=500, verbose_name="secret (encrypted)"
            ),
        ),
        migrations.RunPython(encrypt_secrets, decrypt_secrets),
    ]
