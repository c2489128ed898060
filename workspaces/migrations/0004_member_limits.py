import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from workspaces.rls import EnableRLS


class Migration(migrations.Migration):

    dependencies = [
        ('workspaces', '0003_api_tokens_audit'),
    ]

    operations = [
        migrations.CreateModel(
            name='MemberLimits',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('allowed_models', models.JSONField(blank=True, null=True)),
                ('rpm', models.PositiveIntegerField(blank=True, null=True)),
                ('tpm', models.PositiveIntegerField(blank=True, null=True)),
                ('key_lifetime_days', models.PositiveIntegerField(blank=True, null=True)),
                ('keys_expire_at', models.DateTimeField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('member', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='limits', to='workspaces.member')),
                ('workspace', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='workspaces.workspace')),
            ],
        ),
        EnableRLS('MemberLimits'),
    ]
