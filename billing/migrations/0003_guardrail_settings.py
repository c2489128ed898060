import django.db.models.deletion
from django.db import migrations, models

from workspaces.rls import EnableRLS


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0002_budgets_alerts'),
        ('workspaces', '0002_system'),
    ]

    operations = [
        migrations.CreateModel(
            name='GuardrailSettings',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('loop_breaker', models.BooleanField(default=False)),
                ('loop_max_repeats', models.PositiveIntegerField(blank=True, null=True)),
                ('loop_window_s', models.PositiveIntegerField(blank=True, null=True)),
                ('rpm_floor', models.PositiveIntegerField(blank=True, null=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('workspace', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='workspaces.workspace')),
            ],
            options={
                'constraints': [models.UniqueConstraint(fields=('workspace',), name='guardrail_settings_one_per_ws')],
            },
        ),
        EnableRLS("GuardrailSettings"),
    ]
